"""Loading pretrained ViT weights into ``PromptedVisionTransformer``
(``init_cfg=dict(type='Pretrained')`` or ``pretrained=``)."""
import re
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .layout import extract_vit_state_dict
from .pos_embed import fit_pos_embed

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
