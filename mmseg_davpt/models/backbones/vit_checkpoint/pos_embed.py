"""Fitting a checkpoint's position embedding to the model's patch grid."""
import math
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.models.backbones.vit import VisionTransformer

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
