"""MMSegmentation's ViT encoder layer running the fused attention branch."""
from typing import Optional

import torch
import torch.utils.checkpoint as cp
from mmseg.models.backbones.vit import TransformerEncoderLayer

from .fused_attention import AttentionBranch


class FusedTransformerLayer(TransformerEncoderLayer):
    """``TransformerEncoderLayer`` (same arguments and parameter names, so
    MMSegmentation checkpoints load unchanged) whose attention is
    ``AttentionBranch``: SDPA, split q/k/v biases, and the attention output on
    request. It holds no prompts; the backbone inserts them in the sequence.

    ``layer_scale_init_value`` > 0 (DINOv2) scales both residual branches by
    learnable ``(D,)`` vectors, named as in mmpretrain's ViT
    (``attn.gamma1.weight``, ``ffn.gamma2.weight``); 0 keeps the layer
    exactly MMSegmentation's.
    """

    def __init__(self, *args, layer_scale_init_value: float = 0., **kwargs):
        if layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be >= 0, got '
                             f'{layer_scale_init_value}')
        self.layer_scale_init_value = layer_scale_init_value
        if layer_scale_init_value > 0:
            # mmcv's FFN builds ``gamma2`` itself
            kwargs['ffn_cfg'] = dict(
                kwargs.get('ffn_cfg') or {},
                layer_scale_init_value=layer_scale_init_value)
        super().__init__(*args, **kwargs)

    def build_attn(self, attn_cfg: dict) -> None:
        self.attn = AttentionBranch(
            embed_dims=attn_cfg['embed_dims'],
            num_heads=attn_cfg['num_heads'],
            attn_drop=attn_cfg['attn_drop'],
            proj_drop=attn_cfg['proj_drop'],
            bias=attn_cfg['bias'],
            layer_scale_init_value=self.layer_scale_init_value)

    def forward(self,
                x: torch.Tensor,
                return_taps: bool = False,
                return_weights: bool = False,
                attn_mask: Optional[torch.Tensor] = None):
        """``(B, T, D) -> ((B, T, D), (context, query, weights) or None)``; see
        ``FusedSelfAttention.forward`` (also for ``attn_mask`` ``(T, T)``)."""

        def _inner_forward(x):
            out, taps = self.attn(self.norm1(x), return_taps, return_weights,
                                  attn_mask)
            x = x + out
            x = self.ffn(self.norm2(x), identity=x)
            return x, taps

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)
