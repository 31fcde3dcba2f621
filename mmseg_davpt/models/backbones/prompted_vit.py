"""Prompted Vision Transformer (VPT-Deep / VPT-Shallow) for MMSegmentation
and mmpretrain.

A drop-in replacement for MMSegmentation's ``VisionTransformer``: same
constructor arguments (``pretrained=`` included), same state-dict keys for
the pretrained part, same outputs with ``num_prompts=0``. On top it inserts
learnable prompts between the [CLS] token and the patch tokens (paper
Sec. 3.1, ``docs/method.md`` section 1; ``VisualPrompts``), freezes the
pretrained weights except chosen groups (DA-VPT+, paper Sec. 3.5), and
exposes per-layer attention taps for the DA-VPT metric loss.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.models.utils import PatchEmbed
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.utils import _pair as to_2tuple

from ...utils.registry import also_in_mmpretrain
from .layer_indices import normalise_layer_indices
from .layer_taps import LayerTaps
from .transformer_layer import FusedTransformerLayer
from .tuned_params import resolve_tuned_params, set_trainable
from .visual_prompts import VisualPrompts
from .vit_init import init_vit_weights
from .vit_checkpoint import (fit_pos_embed, load_vit_checkpoint,
                             pretrained_init_cfg)


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class PromptedVisionTransformer(BaseModule):
    """Vision Transformer with visual prompts (VPT) and a frozen body.

    Registered in MMSegmentation's and (when installed) mmpretrain's
    ``MODELS``: one implementation for segmentation and classification.
    Token sequence in layer ``l``: ``[prefix, P_l, patches]``; the prefix is
    [CLS] and any register tokens (``num_prefix`` tokens: 1 + R, or 0 with
    ``with_cls_token=False``).
    Dense outputs hold the patch tokens only, so prompts never reach a
    decode head.

    Args (MMSegmentation ``VisionTransformer`` arguments, same meaning):
        img_size, patch_size, patch_pad, in_channels, embed_dims, num_layers,
        num_heads, mlp_ratio, out_origin, out_indices, qkv_bias, drop_rate,
        attn_drop_rate, drop_path_rate, with_cls_token, output_cls_token,
        norm_cfg, act_cfg, patch_norm, patch_bias, pre_norm, final_norm,
        interpolate_mode, num_fcs, norm_eval, with_cp, pretrained, init_cfg.
        ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=None,
        map_location='cpu')`` (or ``pretrained=PATH``, deprecated as in
        MMSegmentation) loads a ViT in MMSegmentation, mmpretrain or timm
        layout and reports the key match (``vit_checkpoint``).
        ``out_indices`` and ``guided_layers`` take an int or a sequence.

    Prompt arguments (``VisualPrompts`` for details):
        num_prompts (int): prompts per ordinary layer; 0 gives a plain ViT.
        prompt_depth (str): ``'deep'`` or ``'shallow'`` (layer 0 only).
        guided_layers (int | Sequence[int]): layers with DA-VPT metric
            guidance (negative allowed); the default layers to tap.
        num_guided_prompts (int | None): prompts in guided layers (``None``:
            ``num_prompts``; paper's segmentation setting: 10 vs 20).
        prompt_dropout (float): dropout on the prompt tokens.
        prompt_init (str): ``'vpt'`` (default, paper / VPT), ``'xavier'``
            or ``'xavier_div8'`` (released code).
        prompt_norm (str | None): ``None`` (paper) or ``'l2'`` (released
            code: prompts L2-normalised in every forward).
        prompt_attn_mask (bool): released code's mask: prompt queries attend
            to patch tokens only, in every layer whose sequence holds
            prompts; other layers keep the fused kernel. Paper: ``False``.
        tune_params (str | Sequence[str]): pretrained parameters that train
            with the prompts, by name (``tuned_params``): per layer
            ``q_bias k_bias v_bias proj_bias fc1_bias fc2_bias norm1_bias
            norm2_bias norm1 norm2``; model-level ``patch_embed_bias
            cls_token final_norm final_norm_bias``; shortcuts ``'kv'``
            (DA-VPT+), ``'qkv'``, ``'none'``. The released code's recipes
            tune ``('k_bias', 'v_bias', 'proj_bias', 'patch_embed_bias',
            'fc2_bias', 'norm2_bias', 'norm1', 'cls_token')``.
        freeze_pretrained (bool): ``False`` trains everything.

    DINOv2 arguments (off by default, and then nothing is built):
        layer_scale_init_value (float): > 0 adds LayerScale to both residual
            branches of every layer (``layers.N.attn.gamma1.weight``,
            ``layers.N.ffn.gamma2.weight``, mmpretrain's names); DINOv2
            uses 1e-5 (its checkpoints hold the trained values).
        num_register_tokens (int): learnable register tokens
            ``register_tokens`` ``(1, R, D)`` (DINOv2 "with registers"),
            placed after [CLS] without a position embedding. They belong to
            the prefix: the sequence is ``[cls, registers, prompts,
            patches]`` and ``num_prefix`` is ``1 + R``, so heads and the
            guidance never see them as patches. Needs ``with_cls_token``.

    Output argument:
        out_type (str): what each ``out_indices`` layer outputs.
            ``'featmap'`` (default, MMSegmentation): patch tokens as a
            ``(B, D, H/p, W/p)`` map (``[map, cls]`` with
            ``output_cls_token``). ``'cls_token'``: the [CLS] token
            ``(B, D)`` (mmpretrain). ``'mean_tokens'`` (released code's MAE
            classifier feature): mean over every token after the prefix,
            that layer's prompts included, ``(B, D)``; with ``final_norm``
            the last layer's tokens are normalised before the mean.
    """

    OUT_TYPES = ('featmap', 'cls_token', 'mean_tokens')

    def __init__(self,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 patch_pad: Union[str, int] = 'corner',
                 in_channels: int = 3,
                 embed_dims: int = 768,
                 num_layers: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: int = 4,
                 out_origin: bool = False,
                 out_indices: Union[int, Sequence[int]] = -1,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 with_cls_token: bool = True,
                 output_cls_token: bool = False,
                 norm_cfg: dict = dict(type='LN'),
                 act_cfg: dict = dict(type='GELU'),
                 patch_norm: bool = False,
                 patch_bias: bool = False,
                 pre_norm: bool = False,
                 final_norm: bool = False,
                 interpolate_mode: str = 'bicubic',
                 num_fcs: int = 2,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 num_prompts: int = 0,
                 prompt_depth: str = 'deep',
                 guided_layers: Union[int, Sequence[int]] = (),
                 num_guided_prompts: Optional[int] = None,
                 prompt_dropout: float = 0.,
                 prompt_init: str = 'vpt',
                 prompt_norm: Optional[str] = None,
                 prompt_attn_mask: bool = False,
                 tune_params: Union[str, Sequence[str]] = (),
                 freeze_pretrained: bool = True,
                 out_type: str = 'featmap',
                 layer_scale_init_value: float = 0.,
                 num_register_tokens: int = 0,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=pretrained_init_cfg(pretrained, init_cfg))
        self.pretrained = pretrained
        img_size = to_2tuple(img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        if len(img_size) == 1:
            img_size = to_2tuple(img_size[0])
        if len(img_size) != 2:
            raise ValueError(f'img_size must be an int or (h, w), got '
                             f'{img_size}')
        if output_cls_token and not with_cls_token:
            raise ValueError('output_cls_token=True needs with_cls_token=True')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, got '
                             f'{out_type!r}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError("out_type='cls_token' needs with_cls_token=True")

        if num_register_tokens < 0:
            raise ValueError(f'num_register_tokens must be >= 0, got '
                             f'{num_register_tokens}')
        if num_register_tokens and not with_cls_token:
            # [CLS] must stay at index 0 for cls_token() / output_cls_token
            raise ValueError('num_register_tokens > 0 needs '
                             'with_cls_token=True (DINOv2 layout '
                             '[cls, registers, prompts, patches])')

        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.interpolate_mode = interpolate_mode
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.out_origin = out_origin
        self.with_cls_token = with_cls_token
        self.output_cls_token = output_cls_token
        self.pre_norm = pre_norm
        self.final_norm = final_norm
        self.freeze_pretrained = freeze_pretrained
        self.out_type = out_type
        self.num_register_tokens = num_register_tokens
        self.layer_scale_init_value = layer_scale_init_value
        # Tokens before the prompts ([CLS], registers); every slice of the
        # sequence goes through this count.
        self.num_prefix = (1 if with_cls_token else 0) + num_register_tokens

        self.patch_embed = PatchEmbed(
            in_channels=in_channels, embed_dims=embed_dims,
            conv_type='Conv2d', kernel_size=patch_size, stride=patch_size,
            padding=patch_pad, bias=patch_bias,
            norm_cfg=norm_cfg if patch_norm else None, init_cfg=None)
        grid = self.patch_grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        # The [CLS] slot is kept without a [CLS] token too (MMSegmentation's
        # layout); it is then unused.
        self.pos_embed = nn.Parameter(
            torch.zeros(1, grid[0] * grid[1] + 1, embed_dims))
        if num_register_tokens:
            self.register_tokens = nn.Parameter(
                torch.zeros(1, num_register_tokens, embed_dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        if pre_norm:
            self.pre_ln_name, pre_ln = build_norm_layer(
                norm_cfg, embed_dims, postfix='_pre')
            self.add_module(self.pre_ln_name, pre_ln)
        self.out_indices = self._layer_indices(out_indices, 'out_indices')

        dpr = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.layers = ModuleList([
            FusedTransformerLayer(
                embed_dims=embed_dims, num_heads=num_heads,
                feedforward_channels=mlp_ratio * embed_dims,
                attn_drop_rate=attn_drop_rate, drop_rate=drop_rate,
                drop_path_rate=dpr[i], num_fcs=num_fcs, qkv_bias=qkv_bias,
                act_cfg=act_cfg, norm_cfg=norm_cfg, attn_cfg=dict(),
                ffn_cfg=dict(), with_cp=with_cp,
                layer_scale_init_value=layer_scale_init_value)
            for i in range(num_layers)
        ])
        if final_norm:
            self.norm1_name, norm1 = build_norm_layer(
                norm_cfg, embed_dims, postfix=1)
            self.add_module(self.norm1_name, norm1)

        self.prompts = VisualPrompts(
            num_layers, embed_dims, num_prompts=num_prompts,
            depth=prompt_depth,
            guided_layers=normalise_layer_indices(
                guided_layers, num_layers, 'guided_layers', unique=True),
            num_guided_prompts=num_guided_prompts, dropout=prompt_dropout,
            init=prompt_init, norm=prompt_norm, query_mask=prompt_attn_mask,
            patch_size=patch_size)
        self.tuned_params = resolve_tuned_params(tune_params)
        set_trainable(self, self.tuned_params, freeze_pretrained)

    # ------------------------------------------------------------- layout
    def _layer_indices(self, indices, name: str) -> Tuple[int, ...]:
        return normalise_layer_indices(indices, self.num_layers, name)

    @property
    def patch_grid(self) -> Tuple[int, int]:
        """Patch grid ``(h, w)`` of ``img_size`` (the ``pos_embed`` grid)."""
        return (self.img_size[0] // self.patch_size,
                self.img_size[1] // self.patch_size)

    # The prompt layout lives in ``prompts``; these read it.
    guided_layers = property(lambda self: self.prompts.guided_layers)
    num_prompts = property(lambda self: self.prompts.num_prompts)
    num_guided_prompts = property(
        lambda self: self.prompts.num_guided_prompts)
    prompt_depth = property(lambda self: self.prompts.depth)
    prompt_dropout = property(lambda self: self.prompts.dropout)

    @property
    def prompt_counts(self) -> list:
        """Number of prompts inserted before each layer, ``(num_layers,)``."""
        return list(self.prompts.counts)

    @property
    def pre_ln(self):
        return getattr(self, self.pre_ln_name)

    @property
    def norm1(self):
        return getattr(self, self.norm1_name)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, (nn.LayerNorm, _BatchNorm)):
                    m.eval()
        return self

    # ------------------------------------------------------------ weights
    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'),
                                 map_location=cfg.get('map_location', 'cpu'))
            return
        if cfg is not None:
            super().init_weights()
            return
        # No checkpoint: random body as MMSegmentation's ViT; prompts keep
        # their init.
        init_vit_weights(self)

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        map_location: str = 'cpu') -> Dict[str, list]:
        """Load a pretrained ViT file; see
        ``vit_checkpoint.load_vit_checkpoint`` (returns its report)."""
        return load_vit_checkpoint(self, checkpoint, prefix, map_location)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Any state dict (e.g. a runner's ``load_from`` of a model trained at
        # another resolution) gets ``pos_embed`` fitted, as mmpretrain's ViT
        # does in its load hook.
        fit_pos_embed(state_dict, self, prefix,
                      source=f'state dict (prefix {prefix!r})')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------ forward
    def layer_prompts(self, layer: int) -> torch.Tensor:
        """The prompts ``layer`` inserts ``(N_l, D)`` as used in the forward
        (``prompt_norm`` applied); ``(0, D)`` for a layer without prompts."""
        return self.prompts.layer_prompts(
            self._layer_indices(layer, 'layer')[0])

    def query_weight(self, layer: int) -> torch.Tensor:
        """``W_q`` ``(D, D)`` of ``layer``'s attention (the paper's ``W_q p``
        / ``W_q x`` apply it without the query bias)."""
        return self.layers[layer].attn.attn.query_weight

    def _embed(self, inputs: torch.Tensor):
        """Images -> ``([prefix, patches] (B, T, D), patch grid (h, w))``;
        registers (no position embedding, as DINOv2) follow [CLS]."""
        x, hw_shape = self.patch_embed(inputs)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        pos_embed = self.pos_embed
        if x.shape[1] != pos_embed.shape[1]:
            pos_embed = VisionTransformer.resize_pos_embed(
                pos_embed, hw_shape, self.patch_grid, self.interpolate_mode)
        x = self.drop_after_pos(x + pos_embed)
        if self.num_register_tokens:
            x = torch.cat((x[:, :1], self.register_tokens.expand(
                x.shape[0], -1, -1), x[:, 1:]), dim=1)
        elif not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_norm:
            x = self.pre_ln(x)
        return x, hw_shape

    def _format_output(self, x: torch.Tensor, num_prompt_tokens: int,
                       hw_shape: Tuple[int, int]):
        if self.out_type == 'cls_token':
            return x[:, 0]
        if self.out_type == 'mean_tokens':
            return x[:, self.num_prefix:].mean(dim=1)
        patches = x[:, self.num_prefix + num_prompt_tokens:]
        out = patches.transpose(1, 2).reshape(
            x.shape[0], -1, hw_shape[0], hw_shape[1]).contiguous()
        return [out, x[:, 0]] if self.output_cls_token else out

    def forward_with_taps(
        self,
        inputs: torch.Tensor,
        tap_layers: Union[int, Sequence[int], None] = None,
        weight_layers: Union[int, Sequence[int]] = ()
    ) -> Tuple[tuple, Dict[int, LayerTaps]]:
        """Run the ViT and collect attention taps of the chosen layers.

        Args:
            inputs: images ``(B, C, H, W)``.
            tap_layers: layers whose ``LayerTaps`` are returned; ``None``
                means ``guided_layers``. Other layers keep nothing.
            weight_layers: layers whose taps also hold the attention
                probabilities ``(B, H, T, T)``; they run unfused.
        Returns:
            ``(outs, taps)``: ``outs`` as ``forward``; ``taps`` maps layer
            index to ``LayerTaps``.
        """
        tap_layers = self.guided_layers if tap_layers is None else \
            self._layer_indices(tap_layers, 'tap_layers')
        weight_layers = self._layer_indices(weight_layers, 'weight_layers')
        x, hw_shape = self._embed(inputs)
        outs, taps = [], {}
        if self.out_origin:
            outs.append(self._format_output(x, 0, hw_shape))
        num_prompt_tokens = 0  # prompt tokens currently in ``x``
        for i, layer in enumerate(self.layers):
            x, num_prompt_tokens = self.prompts.insert(
                x, i, self.num_prefix, num_prompt_tokens)
            mask = self.prompts.attention_mask(
                self.num_prefix, num_prompt_tokens, x.shape[1], x.device)
            block_input = x
            x, tap = layer(x, return_taps=i in tap_layers,
                           return_weights=i in weight_layers, attn_mask=mask)
            if tap is not None:
                taps[i] = LayerTaps(
                    context=tap[0], block_input=block_input,
                    prompts=self.prompts.layer_prompts(i),
                    query_weight=self.query_weight(i),
                    num_prefix=self.num_prefix,
                    num_prompt_tokens=num_prompt_tokens,
                    grid=tuple(hw_shape), patch_size=self.patch_size,
                    query=tap[1], weights=tap[2])
            if i == self.num_layers - 1 and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                outs.append(
                    self._format_output(x, num_prompt_tokens, hw_shape))
        return tuple(outs), taps

    def forward(self, inputs: torch.Tensor) -> tuple:
        """Images ``(B, C, H, W)`` -> tuple, one entry per ``out_indices``:
        ``(B, D, H/p, W/p)`` maps (``[map, cls (B, D)]`` with
        ``output_cls_token``), or ``(B, D)`` features with ``out_type``
        ``'cls_token'`` / ``'mean_tokens'``."""
        return self.forward_with_taps(inputs, tap_layers=())[0]
