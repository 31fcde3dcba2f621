#!/usr/bin/env python
"""Convert ViT weights (timm ``.pth``/``.bin``/``.safetensors``, the ViT
authors' ``.npz``, mmpretrain, or the DINOv2 authors' ``.pth``) to MMSegmentation's ViT key layout, the one
``PromptedVisionTransformer`` and MMSegmentation's ``VisionTransformer`` load.

Examples::

    # ImageNet-21k ViT-L/16 for SETR (timm state dict)
    python tools/convert_vit_checkpoint.py jx_vit_large_p16_384.pth \
        checkpoints/vit-l16_in21k_mmseg.pth
    # the ViT authors' original file
    python tools/convert_vit_checkpoint.py ViT-L_16.npz \
        checkpoints/vit-l16_in21k_mmseg.pth
    # DINOv2 ViT-L/14 (with registers: *_reg4_pretrain.pth); mask_token is
    # dropped and reported, LayerScale becomes gamma1 / gamma2
    python tools/convert_vit_checkpoint.py dinov2_vitl14_pretrain.pth \
        checkpoints/dinov2-l14_mmseg.pth
"""
import argparse
import os
import os.path as osp

import numpy as np
import torch


from mmseg_davpt.models.backbones.vit_checkpoint import (  # noqa: E402
    extract_vit_state_dict, npz_to_timm)
from mmseg_davpt.utils.output_guard import check_output_file  # noqa: E402


def load_source(path: str):
    """Read ``path`` into a dict of tensors (format chosen by extension)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'no such checkpoint: {path}')
    if path.endswith('.npz'):
        with np.load(path) as npz:
            return npz_to_timm({k: npz[k] for k in npz.files})
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError('reading .safetensors needs the `safetensors` '
                              'package: pip install safetensors') from err
        return load_file(path)
    return torch.load(path, map_location='cpu', weights_only=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='timm .pth/.bin/.safetensors, .npz, '
                        'mmpretrain or DINOv2 checkpoint')
    parser.add_argument('dst', help='output .pth in MMSegmentation layout')
    parser.add_argument('--prefix', default=None,
                        help="key prefix to strip, e.g. 'backbone.' "
                        '(guessed when omitted)')
    parser.add_argument('--force', action='store_true',
                        help='replace dst if it exists (never src)')
    args = parser.parse_args(argv)
    check_output_file(args.dst, [args.src], args.force, 'dst')

    state, layout = extract_vit_state_dict(load_source(args.src),
                                           prefix=args.prefix)
    if args.src.endswith('.npz'):
        layout = 'npz'
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(state, args.dst)
    num = sum(v.numel() for v in state.values())
    print(f'{args.src} ({layout} layout) -> {args.dst}: {len(state)} tensors, '
          f'{num / 1e6:.2f}M values')


if __name__ == '__main__':
    main()
