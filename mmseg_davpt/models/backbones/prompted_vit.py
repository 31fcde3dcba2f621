"""Prompted Vision Transformer (VPT-Deep / VPT-Shallow) for MMSegmentation.

A drop-in replacement for MMSegmentation's ``VisionTransformer``: same
constructor arguments, same state-dict keys for the pretrained part, same
outputs with ``num_prompts=0``. On top it inserts learnable prompt tokens
between the [CLS] token and the patch tokens (METHOD.md section 1), freezes
the pretrained weights, optionally trains chosen bias groups (DA-VPT+), and
exposes per-layer attention taps for the DA-VPT metric loss.
"""
import math
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import (constant_init, kaiming_init,
                                        trunc_normal_)
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.models.utils import PatchEmbed
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.utils import _pair as to_2tuple

from ...utils.registry import also_in_mmpretrain
from .layer_taps import LayerTaps
from .transformer_layer import FusedTransformerLayer
from .vit_checkpoint import extract_vit_state_dict

# Bias groups that ``tune_biases`` may name, and the parameter-name suffix of
# each inside a layer. 'kv' is DA-VPT+'s "efficient bias" (paper App. E).
BIAS_GROUPS = {
    'q': ('attn.attn.q_bias', ),
    'k': ('attn.attn.k_bias', ),
    'v': ('attn.attn.v_bias', ),
    'proj': ('attn.attn.out_proj.bias', ),
    'fc1': ('ffn.layers.0.0.bias', ),
    'fc2': ('ffn.layers.1.bias', ),
    'norm': ('ln1.bias', 'ln2.bias'),
}
BIAS_ALIASES = {'kv': ('k', 'v'), 'qkv': ('q', 'k', 'v'), 'none': ()}


def parse_bias_groups(tune_biases: Union[str, Sequence[str], None]) -> tuple:
    """Normalise ``tune_biases`` (``'kv'``, ``('k', 'v', 'fc1')``, ...) to a
    sorted tuple of group names from ``BIAS_GROUPS``."""
    if tune_biases is None:
        return ()
    names = [tune_biases] if isinstance(tune_biases, str) else tune_biases
    groups = set()
    for name in names:
        if name in BIAS_ALIASES:
            groups.update(BIAS_ALIASES[name])
        elif name in BIAS_GROUPS:
            groups.add(name)
        else:
            raise ValueError(
                f'Unknown bias group {name!r} in tune_biases; choose from '
                f'{sorted(BIAS_GROUPS)} or the shortcuts '
                f'{sorted(BIAS_ALIASES)}.')
    return tuple(sorted(groups))


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class PromptedVisionTransformer(BaseModule):
    """Vision Transformer with visual prompts (VPT) and a frozen body.

    Registered in MMSegmentation's and (when installed) mmpretrain's
    ``MODELS``: one implementation for segmentation and classification.

    Token sequence in layer ``l``: ``[cls, P_l, patches]`` where ``P_l`` are
    ``N_l`` learnable prompts. VPT-Deep replaces the prompts before every
    layer (the outputs at prompt positions are discarded); VPT-Shallow inserts
    them once before layer 0 and carries them through. Dense outputs hold the
    patch tokens only, so prompts never reach a decode head.

    Args (MMSegmentation ``VisionTransformer`` arguments, same meaning):
        img_size, patch_size, patch_pad, in_channels, embed_dims, num_layers,
        num_heads, mlp_ratio, out_origin, out_indices, qkv_bias, drop_rate,
        attn_drop_rate, drop_path_rate, with_cls_token, output_cls_token,
        norm_cfg, act_cfg, patch_norm, patch_bias, pre_norm, final_norm,
        interpolate_mode, num_fcs, norm_eval, with_cp, init_cfg.
        ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=None)``
        loads a ViT checkpoint in MMSegmentation, mmpretrain or timm layout
        and reports missing / unexpected keys (missing pretrained keys and
        shape mismatches are errors).

    Prompt arguments:
        num_prompts (int): prompts per layer; 0 gives a plain ViT.
        prompt_depth (str): ``'deep'`` (new prompts in every layer) or
            ``'shallow'`` (prompts in layer 0 only).
        guided_layers (Sequence[int]): layer indices (0-based, negative
            allowed) that carry DA-VPT metric guidance. They may use their own
            prompt count, and are the default layers to tap.
        num_guided_prompts (int | None): prompts in guided layers; ``None``
            means ``num_prompts`` (paper's segmentation setting: 10 guided,
            20 elsewhere).
        prompt_dropout (float): dropout on the prompt tokens (VPT: 0.1 for
            classification).
        tune_biases (str | Sequence[str]): bias groups that train with the
            prompts: ``()`` none (VPT, DA-VPT), ``'kv'`` key and value biases
            (DA-VPT+), or any subset of ``BIAS_GROUPS``.
        freeze_pretrained (bool): freeze every pretrained weight (default).
            ``False`` trains everything (full fine-tuning reference).

    Output argument:
        out_type (str): what each ``out_indices`` layer outputs.
            ``'featmap'`` (default, MMSegmentation): the patch tokens as a
            ``(B, D, H/p, W/p)`` map (``[map, cls]`` with
            ``output_cls_token``). ``'cls_token'`` (mmpretrain
            classification): the [CLS] token ``(B, D)``, as mmpretrain's
            ``VisionTransformer(out_type='cls_token')``.
    """

    OUT_TYPES = ('featmap', 'cls_token')

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
                 guided_layers: Sequence[int] = (),
                 num_guided_prompts: Optional[int] = None,
                 prompt_dropout: float = 0.,
                 tune_biases: Union[str, Sequence[str]] = (),
                 freeze_pretrained: bool = True,
                 out_type: str = 'featmap',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        img_size = to_2tuple(img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        if len(img_size) == 1:
            img_size = to_2tuple(img_size[0])
        if len(img_size) != 2:
            raise ValueError(f'img_size must be an int or (h, w), got '
                             f'{img_size}')
        if output_cls_token and not with_cls_token:
            raise ValueError('output_cls_token=True needs with_cls_token=True')
        if prompt_depth not in ('deep', 'shallow'):
            raise ValueError(f"prompt_depth must be 'deep' or 'shallow', got "
                             f'{prompt_depth!r}')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, got '
                             f'{out_type!r}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError("out_type='cls_token' needs with_cls_token=True")
        if num_prompts < 0:
            raise ValueError(f'num_prompts must be >= 0, got {num_prompts}')

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

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            padding=patch_pad,
            bias=patch_bias,
            norm_cfg=norm_cfg if patch_norm else None,
            init_cfg=None)
        num_patches = (img_size[0] // patch_size) * (img_size[1] // patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, embed_dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        if pre_norm:
            self.pre_ln_name, pre_ln = build_norm_layer(
                norm_cfg, embed_dims, postfix='_pre')
            self.add_module(self.pre_ln_name, pre_ln)

        self.out_indices = self._normalise_layer_indices(
            [out_indices] if isinstance(out_indices, int) else out_indices,
            'out_indices')

        dpr = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.layers = ModuleList([
            FusedTransformerLayer(
                embed_dims=embed_dims,
                num_heads=num_heads,
                feedforward_channels=mlp_ratio * embed_dims,
                attn_drop_rate=attn_drop_rate,
                drop_rate=drop_rate,
                drop_path_rate=dpr[i],
                num_fcs=num_fcs,
                qkv_bias=qkv_bias,
                act_cfg=act_cfg,
                norm_cfg=norm_cfg,
                attn_cfg=dict(),
                ffn_cfg=dict(),
                with_cp=with_cp) for i in range(num_layers)
        ])
        if final_norm:
            self.norm1_name, norm1 = build_norm_layer(
                norm_cfg, embed_dims, postfix=1)
            self.add_module(self.norm1_name, norm1)

        self.prompt_depth = prompt_depth
        self.guided_layers = self._normalise_layer_indices(
            guided_layers, 'guided_layers')
        self.num_prompts = num_prompts
        self.num_guided_prompts = num_prompts if num_guided_prompts is None \
            else num_guided_prompts
        if self.guided_layers and self.num_guided_prompts <= 0:
            raise ValueError(
                f'guided_layers={self.guided_layers} need at least one guided '
                f'prompt, got num_guided_prompts={self.num_guided_prompts}')
        if prompt_depth == 'shallow' and self.guided_layers and \
                self.guided_layers != (0, ):
            raise ValueError('VPT-Shallow has prompts in layer 0 only, so '
                             'guided_layers can only be (0,), got '
                             f'{self.guided_layers}')
        # ParameterDict keyed by layer index so checkpoints say which layer
        # a prompt belongs to (``prompts.23``) and layers without prompts
        # hold no entry.
        self.prompts = nn.ParameterDict({
            str(i): nn.Parameter(torch.zeros(n, embed_dims))
            for i, n in enumerate(self.prompt_counts) if n > 0
        })
        self.prompt_dropout = nn.Dropout(prompt_dropout)
        self.reset_prompts()

        self.tune_biases = parse_bias_groups(tune_biases)
        self._freeze()

    # ------------------------------------------------------------------ setup
    def _normalise_layer_indices(self, indices: Sequence[int],
                                 name: str) -> Tuple[int, ...]:
        out = []
        for i in indices:
            j = i + self.num_layers if i < 0 else i
            if not 0 <= j < self.num_layers:
                raise ValueError(
                    f'{name} contains {i}, outside the {self.num_layers} '
                    f'layers of this ViT (valid: 0..{self.num_layers - 1} '
                    f'or -{self.num_layers}..-1)')
            out.append(j)
        return tuple(out)

    @property
    def prompt_counts(self) -> List[int]:
        """Number of prompts inserted before each layer, ``(num_layers,)``."""
        counts = []
        for i in range(self.num_layers):
            if self.prompt_depth == 'shallow' and i > 0:
                counts.append(0)
            elif i in self.guided_layers:
                counts.append(self.num_guided_prompts)
            else:
                counts.append(self.num_prompts)
        return counts

    @property
    def pre_ln(self):
        return getattr(self, self.pre_ln_name)

    @property
    def norm1(self):
        return getattr(self, self.norm1_name)

    def reset_prompts(self) -> None:
        """VPT's init: uniform in ``[-v, v]``, ``v = sqrt(6 / (3 p^2 + D))``
        (xavier-uniform over the patch-embedding fan-in and ``D``)."""
        val = math.sqrt(6. / float(3 * self.patch_size**2 + self.embed_dims))
        for prompt in self.prompts.values():
            nn.init.uniform_(prompt, -val, val)

    def _freeze(self) -> None:
        if not self.freeze_pretrained:
            return
        trainable_suffixes = tuple(
            s for g in self.tune_biases for s in BIAS_GROUPS[g])
        for name, param in self.named_parameters():
            param.requires_grad = name.startswith('prompts.') or (
                name.startswith('layers.')
                and name.endswith(trainable_suffixes))

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, (nn.LayerNorm, _BatchNorm)):
                    m.eval()
        return self

    # ---------------------------------------------------------------- weights
    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(self.init_cfg['checkpoint'],
                                 prefix=self.init_cfg.get('prefix'))
            return
        if self.init_cfg is not None:
            super().init_weights()
            return
        # Random init of the ViT body as MMSegmentation's ViT does (timm's
        # jax-style init); prompts keep the VPT init from ``reset_prompts``.
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        for n, m in self.named_modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    if 'ffn' in n:
                        nn.init.normal_(m.bias, mean=0., std=1e-6)
                    else:
                        nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Conv2d):
                kaiming_init(m, mode='fan_in', bias=0.)
            elif isinstance(m, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                constant_init(m, val=1.0, bias=0.)
        for layer in self.layers:
            trunc_normal_(layer.attn.attn.in_proj_weight, std=.02)
            for bias in (layer.attn.attn.q_bias, layer.attn.attn.k_bias,
                         layer.attn.attn.v_bias):
                if bias is not None:
                    nn.init.constant_(bias, 0)

    def load_pretrained(self, checkpoint: str,
                        prefix: Optional[str] = None) -> Dict[str, list]:
        """Load a pretrained ViT into the backbone and report the key match.

        Accepts MMSegmentation, mmpretrain and timm key layouts (the latter
        two converted on the fly), resizes ``pos_embed`` to this model's patch
        grid, and leaves prompts at their VPT init.

        Raises:
            ValueError: pretrained weights missing from the checkpoint, or a
                tensor with a different shape (e.g. another embedding size).
        Returns:
            ``dict(missing=[...], unexpected=[...], new=[...])``.
        """
        raw = CheckpointLoader.load_checkpoint(
            checkpoint, map_location='cpu', logger='current')
        state, layout = extract_vit_state_dict(raw, prefix=prefix)
        if 'pos_embed' in state and \
                state['pos_embed'].shape != self.pos_embed.shape:
            state['pos_embed'] = self._resize_checkpoint_pos_embed(
                state['pos_embed'], checkpoint)
        report = self._load_vit_state(state, checkpoint)
        print_log(
            f'Loaded {layout}-layout ViT weights from {checkpoint}: '
            f'{len(state) - len(report["unexpected"])} tensors; new (not in '
            f'checkpoint): {report["new"] or "none"}; unused checkpoint '
            f'keys: {report["unexpected"] or "none"}',
            logger='current')
        return report

    def _resize_checkpoint_pos_embed(self, pos_embed: torch.Tensor,
                                     source: str) -> torch.Tensor:
        if pos_embed.ndim != 3 or pos_embed.shape[-1] != self.embed_dims:
            raise ValueError(
                f'pos_embed in {source} has shape {tuple(pos_embed.shape)}; '
                f'this backbone needs (1, L, {self.embed_dims}). Was the '
                f'checkpoint made for another embedding size?')
        side = int(math.sqrt(pos_embed.shape[1] - 1))
        if side * side + 1 != pos_embed.shape[1]:
            raise ValueError(f'pos_embed in {source} has {pos_embed.shape[1]} '
                             'tokens, not 1 + a square patch grid')
        grid = (self.img_size[0] // self.patch_size,
                self.img_size[1] // self.patch_size)
        print_log(
            f'Resize pos_embed from {side}x{side} to {grid[0]}x{grid[1]} '
            f'patches ({self.interpolate_mode})',
            logger='current')
        return VisionTransformer.resize_pos_embed(pos_embed, grid,
                                                  (side, side),
                                                  self.interpolate_mode)

    def _load_vit_state(self, state: Dict[str, torch.Tensor],
                        source: str) -> Dict[str, list]:
        own = self.state_dict()
        mismatched = [
            f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state.items() if k in own and v.shape != own[k].shape
        ]
        if mismatched:
            raise ValueError(
                f'Shape mismatch loading {source} (another ViT size?):\n  ' +
                '\n  '.join(mismatched))
        result = self.load_state_dict(state, strict=False)
        new = [k for k in result.missing_keys if k.startswith('prompts.')]
        missing = [k for k in result.missing_keys if k not in new]
        if missing:
            raise ValueError(
                f'{source} lacks {len(missing)} pretrained ViT weights, which '
                f'would stay at random init and frozen: {missing}. Check the '
                'checkpoint layout (tools/convert_vit_checkpoint.py), the '
                '`prefix` in init_cfg, and patch_bias / qkv_bias / '
                'final_norm / pre_norm in the backbone config.')
        return dict(missing=missing, unexpected=list(result.unexpected_keys),
                    new=new)

    # ---------------------------------------------------------------- forward
    def _add_pos_embed(self, x: torch.Tensor,
                       hw_shape: Tuple[int, int]) -> torch.Tensor:
        pos_embed = self.pos_embed
        if x.shape[1] != pos_embed.shape[1]:
            pos_hw = (self.img_size[0] // self.patch_size,
                      self.img_size[1] // self.patch_size)
            pos_embed = VisionTransformer.resize_pos_embed(
                pos_embed, hw_shape, pos_hw, self.interpolate_mode)
        return self.drop_after_pos(x + pos_embed)

    def _expand_prompts(self, layer_idx: int, batch: int) -> torch.Tensor:
        prompt = self.prompts[str(layer_idx)]
        return self.prompt_dropout(prompt.expand(batch, -1, -1))

    def layer_prompts(self, layer: int) -> torch.Tensor:
        """The learnable prompts inserted before ``layer`` ``(N_l, D)``
        (``(0, D)`` for a layer without prompts)."""
        key = str(self._normalise_layer_indices([layer], 'layer')[0])
        if key in self.prompts:
            return self.prompts[key]
        return self.pos_embed.new_zeros(0, self.embed_dims)

    def project_query(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """``W_q x`` of ``layer``'s attention, without the query bias (the
        paper's ``W_q p`` / ``W_q x``), for ``x`` ``(..., D)``."""
        return self.layers[layer].attn.attn.project_query(x, bias=False)

    def _format_output(self, x: torch.Tensor, num_prefix: int,
                       num_prompt_tokens: int, hw_shape: Tuple[int, int]):
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, num_prefix + num_prompt_tokens:]
        B, _, C = patches.shape
        out = patches.reshape(B, hw_shape[0], hw_shape[1],
                              C).permute(0, 3, 1, 2).contiguous()
        if self.output_cls_token:
            return [out, x[:, 0]]
        return out

    def forward_with_taps(
        self,
        inputs: torch.Tensor,
        tap_layers: Optional[Sequence[int]] = None,
        weight_layers: Sequence[int] = ()
    ) -> Tuple[tuple, Dict[int, LayerTaps]]:
        """Run the ViT and collect attention taps of the chosen layers.

        Args:
            inputs: images ``(B, C, H, W)``.
            tap_layers: layer indices whose ``LayerTaps`` are returned;
                ``None`` means ``guided_layers``. Other layers keep nothing.
            weight_layers: layers whose taps also hold the attention
                probabilities ``(B, H, T, T)``; they run unfused, the rest
                keep the fused kernel.
        Returns:
            ``(outs, taps)``: ``outs`` as ``forward``; ``taps`` maps layer
            index to ``LayerTaps``.
        """
        tap_layers = self.guided_layers if tap_layers is None else \
            self._normalise_layer_indices(tap_layers, 'tap_layers')
        weight_layers = self._normalise_layer_indices(weight_layers,
                                                      'weight_layers')
        B = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = self._add_pos_embed(x, hw_shape)
        num_prefix = 1
        if not self.with_cls_token:
            x = x[:, 1:]
            num_prefix = 0
        if self.pre_norm:
            x = self.pre_ln(x)

        outs, taps = [], {}
        if self.out_origin:
            outs.append(self._format_output(x, num_prefix, 0, hw_shape))

        counts = self.prompt_counts
        num_prompt_tokens = 0  # prompt tokens currently in ``x``
        for i, layer in enumerate(self.layers):
            if counts[i] > 0:
                # One concatenation swaps the previous layer's prompt outputs
                # for this layer's prompts (VPT-Deep).
                x = torch.cat((x[:, :num_prefix], self._expand_prompts(
                    i, B), x[:, num_prefix + num_prompt_tokens:]),
                              dim=1)
                num_prompt_tokens = counts[i]
            block_input = x
            x, tap = layer(x, return_taps=i in tap_layers,
                           return_weights=i in weight_layers)
            if tap is not None:
                taps[i] = LayerTaps(
                    context=tap[0], block_input=block_input,
                    prompts=self.layer_prompts(i),
                    project_query=partial(self.project_query, i),
                    num_prefix=num_prefix, num_prompt_tokens=num_prompt_tokens,
                    grid=tuple(hw_shape), patch_size=self.patch_size,
                    weights=tap[1])
            if i == self.num_layers - 1 and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                outs.append(
                    self._format_output(x, num_prefix, num_prompt_tokens,
                                        hw_shape))
        return tuple(outs), taps

    def forward(self, inputs: torch.Tensor) -> tuple:
        """Images ``(B, C, H, W)`` -> tuple of ``(B, D, H/p, W/p)`` maps, one
        per ``out_indices`` (each ``[map, cls (B, D)]`` with
        ``output_cls_token``), or of ``(B, D)`` [CLS] tokens with
        ``out_type='cls_token'``."""
        return self.forward_with_taps(inputs, tap_layers=())[0]
