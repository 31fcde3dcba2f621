"""The DINOv2 authors' ViT checkpoint layout -> MMSegmentation's ViT keys.

The DINOv2 release (``dinov2_vit{s,b,l}14[_reg4]_pretrain.pth``) is timm-like
(``blocks.N.norm1``, ``blocks.N.attn.qkv``, ``blocks.N.mlp.fc1``, ``norm``)
plus LayerScale ``blocks.N.ls{1,2}.gamma``, optional ``register_tokens``
``(1, R, D)`` and a ``mask_token`` ``(1, D)`` used only by its masked-image
pretraining. LayerScale goes to mmpretrain's names, which
``PromptedVisionTransformer(layer_scale_init_value>0)`` uses:
``layers.N.attn.gamma1.weight`` and ``layers.N.ffn.gamma2.weight``.
mmpretrain's own DINOv2 checkpoints already use those names
(``mmpretrain_to_mmseg`` handles them).
"""
import re
from typing import List, Mapping, Tuple

import torch

from .converters import TIMM_RULES, StateDict

# timm's names plus LayerScale (mmpretrain's ``gamma1`` / ``gamma2``)
_RULES = TIMM_RULES + [
    (r'^blocks\.(\d+)\.ls1\.gamma$', r'layers.\1.attn.gamma1.weight'),
    (r'^blocks\.(\d+)\.ls2\.gamma$', r'layers.\1.ffn.gamma2.weight'),
]
_KEEP = ('cls_token', 'pos_embed', 'register_tokens')
# pretraining-only tensors; a backbone never uses them
DROPPED = ('mask_token', )


def is_dinov2_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` is in the DINOv2 authors' layout (``blocks.N.*``
    with LayerScale ``ls1.gamma``, or a ``mask_token`` / ``register_tokens``
    next to ``blocks.N.*``)."""
    keys = list(state)
    if not any(k.startswith('blocks.') for k in keys):
        return False
    return any(re.match(r'blocks\.\d+\.ls1\.gamma$', k) or k in DROPPED or
               k == 'register_tokens' for k in keys)


def dinov2_to_mmseg(state: Mapping[str, torch.Tensor]
                    ) -> Tuple[StateDict, List[str]]:
    """DINOv2 authors' state dict -> ``(MMSegmentation ViT keys, dropped
    keys)``.

    Raises:
        ValueError: keys this layout does not have (e.g. the chunked
            ``blocks.C.N.*`` of FSDP training, or ViT-g's SwiGLU
            ``mlp.w12`` / ``mlp.w3``, which the backbone does not build),
            named in the message.
    """
    out, dropped, unknown = {}, [], []
    for key, value in state.items():
        if key in DROPPED:
            dropped.append(key)
            continue
        if key in _KEEP:
            out[key] = value
            continue
        for pattern, repl in _RULES:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f'Unknown keys in a DINOv2-layout checkpoint: {unknown[:8]}'
            f'{" ..." if len(unknown) > 8 else ""} ({len(unknown)} in all). '
            'Supported: ViT-S/B/L with a plain MLP (blocks.N.mlp.fc1/fc2), '
            'unchunked blocks.N.*; ViT-g (SwiGLU) and chunked '
            'blocks.C.N.* checkpoints are not.')
    return out, dropped
