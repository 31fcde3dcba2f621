"""Conversions of ViT weights from other layouts to MMSegmentation's.

MMSegmentation's ``VisionTransformer`` (and our prompted one) name weights
``patch_embed.projection``, ``layers.N.ln1``, ``layers.N.attn.attn.in_proj_*``,
``layers.N.attn.attn.out_proj``, ``layers.N.ffn.layers.{0.0,1}``, ``ln1``
(final norm). Three other layouts are common:

* timm (``blocks.N.attn.qkv``, ``blocks.N.mlp.fc1``, ``norm``...), e.g. the
  ImageNet-21k ViT-L/16 SETR starts from;
* the ViT authors' ``.npz`` (JAX/Flax names, HWIO kernels, per-head q/k/v);
* mmpretrain (``layers.N.attn.qkv``, ``layers.N.attn.proj``), e.g. its MAE and
  MoCo v3 ViT-B (its DINOv2 ViTs too: LayerScale ``gamma1`` / ``gamma2``);
* the DINOv2 authors' (timm-like plus LayerScale ``ls1`` / ``ls2``, registers
  and a ``mask_token``), in ``dinov2_checkpoint``.

Each has one function here; ``extract_vit_state_dict`` picks by key names.
Loading into ``PromptedVisionTransformer`` (``init_cfg=dict(type=
'Pretrained')`` or ``pretrained=``) is ``load_vit_checkpoint``; it and the
backbone's state-dict hook fit ``pos_embed`` to the model with
``fit_pos_embed``.
"""
import math
import re
import warnings
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.models.backbones.vit import VisionTransformer

from .dinov2_checkpoint import dinov2_to_mmseg, is_dinov2_layout

StateDict = Dict[str, torch.Tensor]

_TIMM_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.attn.in_proj_'),
    (r'^blocks\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
]
_MMPRETRAIN_RULES = [
    (r'^layers\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.attn.in_proj_'),
    (r'^layers\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
    (r'^pre_norm\.', 'ln_pre.'),
]
# Classification heads never belong to a backbone.
_DROP = re.compile(r'^(head|heads|pre_logits|fc_norm)\.|^head$')


def _rename(state: Mapping[str, torch.Tensor], rules) -> StateDict:
    out = {}
    for key, value in state.items():
        if _DROP.match(key):
            continue
        for pattern, repl in rules:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                key = new_key
                break
        out[key] = value
    return out


def timm_to_mmseg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """timm ViT state dict -> MMSegmentation ViT keys (drops ``head.*``)."""
    return _rename(state, _TIMM_RULES)


def mmpretrain_to_mmseg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """mmpretrain ViT backbone keys -> MMSegmentation ViT keys."""
    return _rename(state, _MMPRETRAIN_RULES)


def npz_to_timm(weights: Mapping[str, np.ndarray]) -> StateDict:
    """The ViT authors' ``.npz`` (``ViT-B_16.npz`` ...) -> timm ViT keys.

    Kernels are stored HWIO (conv) and in x out (dense), attention per head;
    torch wants OIHW and out x in, with q/k/v packed into one matrix.
    """
    def t(name: str) -> torch.Tensor:
        if name not in weights:
            raise KeyError(f'{name!r} not in the .npz; is this a plain ViT '
                           '(not a hybrid ResNet-ViT) checkpoint?')
        return torch.from_numpy(np.asarray(weights[name], dtype=np.float32))

    out = {
        'patch_embed.proj.weight': t('embedding/kernel').permute(3, 2, 0, 1),
        'patch_embed.proj.bias': t('embedding/bias'),
        'cls_token': t('cls'),
        'pos_embed': t('Transformer/posembed_input/pos_embedding'),
        'norm.weight': t('Transformer/encoder_norm/scale'),
        'norm.bias': t('Transformer/encoder_norm/bias'),
    }
    blocks = sorted({
        int(m.group(1))
        for k in weights
        if (m := re.match(r'Transformer/encoderblock_(\d+)/', k))
    })
    if not blocks:
        raise KeyError('no Transformer/encoderblock_* entries in the .npz')
    for i in blocks:
        src = f'Transformer/encoderblock_{i}/'
        dst = f'blocks.{i}.'
        att = src + 'MultiHeadDotProductAttention_1/'
        # query/key/value kernels: (D, heads, head_dim) -> (D_out, D_in)
        qkv_w = [t(att + f'{n}/kernel').flatten(1).T
                 for n in ('query', 'key', 'value')]
        qkv_b = [t(att + f'{n}/bias').flatten() for n in ('query', 'key',
                                                           'value')]
        out.update({
            dst + 'norm1.weight': t(src + 'LayerNorm_0/scale'),
            dst + 'norm1.bias': t(src + 'LayerNorm_0/bias'),
            dst + 'attn.qkv.weight': torch.cat(qkv_w),
            dst + 'attn.qkv.bias': torch.cat(qkv_b),
            # out kernel: (heads, head_dim, D) -> (D_out, D_in)
            dst + 'attn.proj.weight': t(att + 'out/kernel').flatten(0, 1).T,
            dst + 'attn.proj.bias': t(att + 'out/bias'),
            dst + 'norm2.weight': t(src + 'LayerNorm_2/scale'),
            dst + 'norm2.bias': t(src + 'LayerNorm_2/bias'),
            dst + 'mlp.fc1.weight': t(src + 'MlpBlock_3/Dense_0/kernel').T,
            dst + 'mlp.fc1.bias': t(src + 'MlpBlock_3/Dense_0/bias'),
            dst + 'mlp.fc2.weight': t(src + 'MlpBlock_3/Dense_1/kernel').T,
            dst + 'mlp.fc2.bias': t(src + 'MlpBlock_3/Dense_1/bias'),
        })
    return {k: v.contiguous() for k, v in out.items()}


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """``'dinov2'``, ``'timm'``, ``'mmpretrain'``, ``'mmseg'`` or
    ``'unknown'`` by key names."""
    keys = list(state)
    if is_dinov2_layout(state):
        return 'dinov2'
    if any(k.startswith('blocks.') for k in keys):
        return 'timm'
    if any(re.match(r'layers\.\d+\.attn\.qkv\.', k) for k in keys):
        return 'mmpretrain'
    if any(re.match(r'layers\.\d+\.attn\.attn\.', k) for k in keys):
        return 'mmseg'
    return 'unknown'


def _unwrap(checkpoint) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        for key in ('state_dict', 'model', 'module'):
            if key in checkpoint and isinstance(checkpoint[key], Mapping):
                return checkpoint[key]
    return checkpoint


def extract_vit_state_dict(checkpoint,
                           prefix: Optional[str] = None
                           ) -> Tuple[StateDict, str]:
    """Backbone weights in MMSegmentation layout from a loaded checkpoint.

    Unwraps ``state_dict`` / ``model``, strips ``module.`` (DDP) and
    ``prefix`` (e.g. ``'backbone.'``; guessed when every ViT key carries
    ``backbone.``), converts timm / mmpretrain layouts.

    Returns:
        ``(state_dict, layout)`` with ``layout`` the detected source layout.
    Raises:
        ValueError: no ViT weights could be recognised.
    """
    state = dict(_unwrap(checkpoint))
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    if prefix is None and detect_layout(state) == 'unknown' and any(
            k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix)}
    layout = detect_layout(state)
    if layout == 'dinov2':
        state, dropped = dinov2_to_mmseg(state)
        if dropped:
            print_log(f'DINOv2 checkpoint: dropped pretraining-only keys '
                      f'{dropped}', logger='current')
    elif layout == 'timm':
        state = timm_to_mmseg(state)
    elif layout == 'mmpretrain':
        state = mmpretrain_to_mmseg(state)
    elif layout == 'unknown':
        raise ValueError(
            'Could not find ViT weights in the checkpoint (no '
            '`blocks.N.*` (timm), `layers.N.attn.qkv.*` (mmpretrain) or '
            '`layers.N.attn.attn.*` (MMSegmentation) keys'
            f'{" under prefix " + repr(prefix) if prefix else ""}). '
            f'First keys: {list(state)[:8]}')
    return state, layout


# ------------------------------------------------------------------ loading
PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'map_location')


def pretrained_init_cfg(pretrained: Optional[str],
                        init_cfg: Optional[dict]) -> Optional[dict]:
    """MMSegmentation's ``pretrained=`` semantics, then ``init_cfg`` checks.

    A str ``pretrained`` becomes ``dict(type='Pretrained', checkpoint=...)``
    with MMSegmentation's deprecation warning (this is how
    ``EncoderDecoder(pretrained=...)`` reaches the backbone).

    Raises:
        ValueError: both ``pretrained`` and ``init_cfg`` given; a
            ``'Pretrained'`` ``init_cfg`` with an unknown key (named, with
            the expected ones) or without ``checkpoint``.
        TypeError: ``pretrained`` neither a str nor ``None``.
    """
    if pretrained is not None:
        if init_cfg:
            raise ValueError('init_cfg and pretrained cannot be set at the '
                             f'same time (pretrained={pretrained!r}, '
                             f'init_cfg={init_cfg!r})')
        if not isinstance(pretrained, str):
            raise TypeError('pretrained must be a str or None, got '
                            f'{type(pretrained).__name__}')
        warnings.warn('DeprecationWarning: pretrained is deprecated, '
                      'please use "init_cfg" instead')
        init_cfg = dict(type='Pretrained', checkpoint=pretrained)
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        unknown = sorted(set(init_cfg) - set(PRETRAINED_KEYS))
        if unknown or 'checkpoint' not in init_cfg:
            problem = f'unknown key(s) {unknown}' if unknown else \
                "no 'checkpoint'"
            raise ValueError(
                f"init_cfg of type 'Pretrained' has {problem}; expected "
                "keys: 'checkpoint' (required), 'prefix', 'map_location' "
                f'(got {sorted(init_cfg)})')
    return init_cfg


def _is_square(n: int) -> bool:
    return n >= 0 and math.isqrt(n)**2 == n


def fit_pos_embed(state: Dict[str, torch.Tensor],
                  backbone: nn.Module,
                  prefix: str = '',
                  source: str = 'checkpoint') -> List[str]:
    """Fit ``state[prefix + 'pos_embed']`` to ``backbone`` in place.

    * resize the patch grid to the backbone's (``interpolate_mode``), as
      MMSegmentation / mmpretrain do;
    * a ``pos_embed`` without the [CLS] slot (mmpretrain
      ``with_cls_token=False``, timm ``no_embed_class``) gets a zero slot;
    * a missing ``cls_token`` is filled with zeros when the backbone has
      ``with_cls_token=False`` (it is then never used).

    Grids are square: the slot is recognised by ``L - 1`` or ``L`` being a
    square (``cls_token`` in ``state`` decides when both could be).

    Returns:
        The entries filled with zeros (``'pos_embed[:, 0]'``,
        ``'cls_token'``), each also logged.
    Raises:
        ValueError: another embedding size; a token count that is no square
            grid; no [CLS] token in ``state`` for a backbone that uses one.
    """
    key, cls_key = prefix + 'pos_embed', prefix + 'cls_token'
    if key not in state:
        return []
    pos, own = state[key], backbone.pos_embed
    dims = own.shape[-1]
    if pos.ndim != 3 or pos.shape[-1] != dims:
        raise ValueError(
            f'pos_embed in {source} has shape {tuple(pos.shape)}; this '
            f'backbone needs (1, L, {dims}). Was the checkpoint made for '
            'another embedding size?')
    has_cls = cls_key in state
    if pos.shape == own.shape and has_cls:
        return []
    n = pos.shape[1]
    with_slot, without_slot = _is_square(n - 1), n > 0 and _is_square(n)
    if not (with_slot or without_slot):
        raise ValueError(
            f'pos_embed in {source} has {n} tokens: not a square patch grid, '
            'with or without a [CLS] slot')
    slot = with_slot if has_cls or not without_slot else False
    filled = []
    if not slot:
        pos = torch.cat([pos.new_zeros(1, 1, dims), pos], dim=1)
        filled.append('pos_embed[:, 0]')
    if pos.shape != own.shape:
        side = math.isqrt(pos.shape[1] - 1)
        grid = backbone.patch_grid
        print_log(
            f'Resize pos_embed from {side}x{side} to {grid[0]}x{grid[1]} '
            f'patches ({backbone.interpolate_mode}) loading {source}',
            logger='current')
        pos = VisionTransformer.resize_pos_embed(pos, grid, (side, side),
                                                 backbone.interpolate_mode)
    state[key] = pos
    if not has_cls:
        if backbone.with_cls_token:
            raise ValueError(
                f'{source} has no cls_token (a ViT trained without [CLS], '
                "e.g. mmpretrain's with_cls_token=False), but this backbone "
                'uses one: build it with with_cls_token=False, or use a '
                'checkpoint with a [CLS] token')
        state[cls_key] = own.new_zeros(1, 1, dims)
        filled.append('cls_token')
    if filled:
        print_log(f'{source} has no [CLS] token: filled {filled} with '
                  'zeros (unused with with_cls_token=False)'
                  if 'cls_token' in filled else
                  f'{source} has no [CLS] position: filled {filled} with '
                  'zeros', logger='current')
    return filled


def load_vit_state(backbone: nn.Module, state: Dict[str, torch.Tensor],
                   source: str) -> Dict[str, list]:
    """``backbone.load_state_dict(state, strict=False)`` with the key check.

    Raises:
        ValueError: a shape mismatch, pretrained weights missing from
            ``state`` (they would stay random and frozen), or DINOv2
            LayerScale / register weights the backbone does not build.
    Returns:
        ``dict(missing=[], unexpected=[...], new=[prompt keys])``.
    """
    own = backbone.state_dict()
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state.items() if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(
            f'Shape mismatch loading {source} (another ViT size?):\n  ' +
            '\n  '.join(mismatched))
    # DINOv2 parts the model lacks would be dropped as 'unexpected' while
    # the model computes something else than the checkpoint's network
    unbuilt = [k for k in state if k not in own and (
        k == 'register_tokens' or re.search(r'\.gamma[12]\.weight$', k))]
    if unbuilt:
        raise ValueError(
            f'{source} holds DINOv2 weights this backbone does not build: '
            f'{unbuilt[:4]}{" ..." if len(unbuilt) > 4 else ""}. Set '
            'layer_scale_init_value > 0 (LayerScale gamma1 / gamma2) and '
            'num_register_tokens (register_tokens) to match the checkpoint.')
    result = backbone.load_state_dict(state, strict=False)
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


def load_vit_checkpoint(backbone: nn.Module,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu') -> Dict[str, list]:
    """Load a pretrained ViT file into a prompted backbone and report it.

    Accepts MMSegmentation, mmpretrain and timm layouts (see
    ``extract_vit_state_dict``), fits ``pos_embed`` (``fit_pos_embed``) and
    leaves the prompts at their init.

    Returns:
        ``dict(missing=[], unexpected=[...], new=[prompt keys],
        filled=[entries filled with zeros])``.
    Raises:
        ValueError: see ``fit_pos_embed`` and ``load_vit_state``.
    """
    raw = CheckpointLoader.load_checkpoint(
        checkpoint, map_location=map_location, logger='current')
    state, layout = extract_vit_state_dict(raw, prefix=prefix)
    filled = fit_pos_embed(state, backbone, source=checkpoint)
    report = load_vit_state(backbone, state, checkpoint)
    report['filled'] = filled
    print_log(
        f'Loaded {layout}-layout ViT weights from {checkpoint}: '
        f'{len(state) - len(report["unexpected"])} tensors; new (not in '
        f'checkpoint): {report["new"] or "none"}; filled with zeros: '
        f'{filled or "none"}; unused checkpoint keys: '
        f'{report["unexpected"] or "none"}',
        logger='current')
    return report
