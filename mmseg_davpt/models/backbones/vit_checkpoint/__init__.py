"""Pretrained ViT weights for ``PromptedVisionTransformer``, one module per
job: ``converters`` (timm, ``.npz``, mmpretrain) and ``dinov2`` (the DINOv2
authors' layout) rename weights to MMSegmentation's layout; ``layout``
detects the source and extracts the backbone weights; ``pos_embed`` fits the
position embedding to the patch grid; ``init_cfg`` checks the backbone's
``pretrained`` / ``init_cfg``; ``loading`` loads a file into the backbone.
"""
from .converters import mmpretrain_to_mmseg, npz_to_timm, timm_to_mmseg
from .dinov2 import dinov2_to_mmseg, is_dinov2_layout
from .init_cfg import PRETRAINED_KEYS, pretrained_init_cfg
from .layout import detect_layout, extract_vit_state_dict
from .loading import load_vit_checkpoint, load_vit_state
from .pos_embed import fit_pos_embed

__all__ = [
    'mmpretrain_to_mmseg', 'npz_to_timm', 'timm_to_mmseg', 'dinov2_to_mmseg',
    'is_dinov2_layout', 'PRETRAINED_KEYS', 'pretrained_init_cfg',
    'detect_layout', 'extract_vit_state_dict', 'load_vit_checkpoint',
    'load_vit_state', 'fit_pos_embed'
]
