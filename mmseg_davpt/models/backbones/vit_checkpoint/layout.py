"""Which layout a ViT checkpoint is in, and its backbone weights in
MMSegmentation's layout whatever the source (``extract_vit_state_dict``)."""
import re
from typing import Mapping, Optional, Tuple

import torch
from mmengine.logging import print_log

from ....utils.state_dict import strip_module_prefix
from .converters import StateDict, mmpretrain_to_mmseg, timm_to_mmseg
from .dinov2 import dinov2_to_mmseg, is_dinov2_layout


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
    state = strip_module_prefix(dict(_unwrap(checkpoint)))
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
