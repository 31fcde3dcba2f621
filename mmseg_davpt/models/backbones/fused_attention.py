"""Self-attention with fused kernels and split q/k/v biases, keyed like
MMSegmentation's ``VisionTransformer`` attention.

MMSegmentation's ViT layer holds ``attn`` (mmcv ``MultiheadAttention``) whose
``attn`` is a ``torch.nn.MultiheadAttention``; the checkpoint keys are therefore
``attn.attn.in_proj_weight``, ``attn.attn.in_proj_bias`` and
``attn.attn.out_proj.{weight,bias}``. The modules here keep those keys so any
MMSegmentation-layout ViT checkpoint loads unchanged, but:

* attention runs through ``F.scaled_dot_product_attention`` (no N x N map is
  materialised, unlike ``nn.MultiheadAttention(need_weights=True)``);
* the packed q/k/v bias is held as three parameters so DA-VPT+ can train the
  key and value biases while the query bias stays frozen (a single packed
  tensor cannot be partially frozen, and weight decay would move its frozen
  entries);
* on request the forward also returns the attention output before the output
  projection (the DA-VPT metric loss compares it), at no extra cost: the
  tensor exists anyway for the backward pass.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.scale import LayerScale


class FusedSelfAttention(nn.Module):
    """Multi-head self-attention computed with ``scaled_dot_product_attention``.

    State-dict keys: ``in_proj_weight`` ``(3D, D)``, ``in_proj_bias`` ``(3D,)``
    and ``out_proj.{weight,bias}``, as ``torch.nn.MultiheadAttention``.
    Internally the bias lives in ``q_bias``, ``k_bias``, ``v_bias`` ``(D,)``.

    Args:
        embed_dims: token width ``D``.
        num_heads: number of heads; must divide ``D``.
        attn_drop: dropout on the attention weights (training only).
        bias: whether q/k/v and output projections have biases.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 attn_drop: float = 0.,
                 bias: bool = True):
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(
            torch.empty(3 * embed_dims, embed_dims))
        if bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.k_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        else:
            self.register_parameter('q_bias', None)
            self.register_parameter('k_bias', None)
            self.register_parameter('v_bias', None)
        self.out_proj = nn.Linear(embed_dims, embed_dims, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def packed_bias(self) -> Optional[torch.Tensor]:
        """The ``(3D,)`` q/k/v bias as ``nn.MultiheadAttention`` stores it."""
        if self.q_bias is None:
            return None
        return torch.cat([self.q_bias, self.k_bias, self.v_bias])

    @property
    def query_weight(self) -> torch.Tensor:
        """``W_q`` ``(D, D)``: the query rows of ``in_proj_weight``."""
        return self.in_proj_weight[:self.embed_dims]

    def project_query(self, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """Apply the query projection ``W_q x (+ b_q)`` to ``(..., D)``."""
        return F.linear(x, self.query_weight, self.q_bias if bias else None)

    def forward(self,
                x: torch.Tensor,
                return_taps: bool = False,
                return_weights: bool = False,
                attn_mask: Optional[torch.Tensor] = None):
        """Attend over ``x`` ``(B, T, D)``; ``attn_mask`` ``(T, T)`` bool
        (True: the query may attend to the key) or ``None`` (full attention).

        Returns:
            ``(out, taps)``: ``out`` ``(B, T, D)`` after the output projection;
            ``taps`` is ``(context, query, weights)`` when ``return_taps`` or
            ``return_weights`` (``context`` ``(B, T, D)``; ``weights``
            ``(B, H, T, T)`` or ``None``), else ``None``.
            ``return_weights`` computes the softmax explicitly (the fused
            kernel never forms it); use it for inspection, not training.
        """
        B, T, D = x.shape
        head_dims = D // self.num_heads
        qkv = F.linear(x, self.in_proj_weight, self.packed_bias())
        # (B, T, 3, H, d) -> 3 x (B, H, T, d)
        q, k, v = qkv.view(B, T, 3, self.num_heads,
                           head_dims).permute(2, 0, 3, 1, 4).unbind(0)
        weights = None
        if return_weights:
            scores = q @ k.transpose(-2, -1) * head_dims**-0.5
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, float('-inf'))
            weights = scores.softmax(-1)
            context = F.dropout(weights, self.attn_drop,
                                self.training) @ v
        else:
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask,
                dropout_p=self.attn_drop if self.training else 0.)
        context = context.transpose(1, 2).reshape(B, T, D)
        out = self.out_proj(context)
        # the query is a view of the qkv projection, kept for backward anyway
        taps = (context, qkv[..., :D], weights) \
            if return_taps or return_weights else None
        return out, taps

    # The packed ``in_proj_bias`` key is what checkpoints (ours included)
    # carry; the split parameters are an implementation detail.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.q_bias is None:
            return
        for name in ('q_bias', 'k_bias', 'v_bias'):
            destination.pop(prefix + name, None)
        bias = self.packed_bias()
        destination[prefix + 'in_proj_bias'] = bias if keep_vars \
            else bias.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + 'in_proj_bias'
        if self.q_bias is not None and key in state_dict:
            packed = state_dict.pop(key)
            if packed.shape != (3 * self.embed_dims, ):
                error_msgs.append(
                    f'size mismatch for {key}: copying a param with shape '
                    f'{tuple(packed.shape)} from checkpoint, the shape in '
                    f'current model is ({3 * self.embed_dims},).')
            else:
                for name, part in zip(('q_bias', 'k_bias', 'v_bias'),
                                      packed.chunk(3)):
                    state_dict[prefix + name] = part
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        # Report the checkpoint's key name rather than the internal ones.
        split = [prefix + n for n in ('q_bias', 'k_bias', 'v_bias')]
        if any(k in missing_keys for k in split):
            for k in split:
                if k in missing_keys:
                    missing_keys.remove(k)
            missing_keys.append(key)


class AttentionBranch(nn.Module):
    """The ``attn`` slot of a ViT layer: attention plus output dropout.

    Mirrors mmcv's ``MultiheadAttention`` as MMSegmentation's ViT builds it
    (dropout ``proj_drop`` after the projection, no drop-path on this branch)
    so the two produce the same numbers. The residual is added by the layer.

    Args:
        embed_dims, num_heads, attn_drop, bias: see ``FusedSelfAttention``.
        proj_drop: dropout after the output projection.
        layer_scale_init_value: > 0 adds LayerScale (DINOv2) after the
            projection as ``gamma1.weight`` ``(D,)``, mmpretrain's name;
            0 (default) adds nothing.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 bias: bool = True,
                 layer_scale_init_value: float = 0.):
        super().__init__()
        self.attn = FusedSelfAttention(embed_dims, num_heads, attn_drop, bias)
        self.proj_drop = nn.Dropout(proj_drop)
        if layer_scale_init_value > 0:
            self.gamma1 = LayerScale(embed_dims, scale=layer_scale_init_value)

    def forward(self,
                x: torch.Tensor,
                return_taps: bool = False,
                return_weights: bool = False,
                attn_mask: Optional[torch.Tensor] = None):
        """``(B, T, D) -> ((B, T, D), taps or None)``; see
        ``FusedSelfAttention``."""
        out, taps = self.attn(x, return_taps, return_weights, attn_mask)
        out = self.proj_drop(out)
        if hasattr(self, 'gamma1'):
            out = self.gamma1(out)
        return out, taps
