#!/usr/bin/env python
"""Write a seeded random tiny ViT in timm's key layout (the demo's stand-in
for downloaded pretrained weights; convert it with convert_vit_checkpoint.py).
"""
import argparse
import os
import os.path as osp

import torch


def timm_vit_state_dict(embed_dims=96, depth=4, patch=8, img_size=64,
                        in_chans=3, mlp_ratio=4, num_classes=1000, seed=0):
    """Random ViT weights named as timm's ``VisionTransformer`` names them,
    drawn like the jax ViT init (LeCun-normal patch embedding, truncated
    normal 0.02 elsewhere, zero biases, unit LayerNorms)."""
    g = torch.Generator().manual_seed(seed)

    def tn(*shape):
        return (torch.randn(*shape, generator=g) * .02).clamp(-.04, .04)

    D, H = embed_dims, embed_dims * mlp_ratio
    grid = img_size // patch
    sd = {
        'cls_token': tn(1, 1, D),
        'pos_embed': tn(1, 1 + grid * grid, D),
        'patch_embed.proj.weight': torch.randn(
            D, in_chans, patch, patch, generator=g) /
        (in_chans * patch * patch)**0.5,
        'patch_embed.proj.bias': torch.zeros(D),
        'norm.weight': torch.ones(D), 'norm.bias': torch.zeros(D),
        'head.weight': tn(num_classes, D), 'head.bias': torch.zeros(
            num_classes),
    }
    for i in range(depth):
        p = f'blocks.{i}.'
        sd.update({
            p + 'norm1.weight': torch.ones(D),
            p + 'norm1.bias': torch.zeros(D),
            p + 'attn.qkv.weight': tn(3 * D, D),
            p + 'attn.qkv.bias': torch.zeros(3 * D),
            p + 'attn.proj.weight': tn(D, D), p + 'attn.proj.bias':
            torch.zeros(D),
            p + 'norm2.weight': torch.ones(D),
            p + 'norm2.bias': torch.zeros(D),
            p + 'mlp.fc1.weight': tn(H, D), p + 'mlp.fc1.bias': torch.zeros(H),
            p + 'mlp.fc2.weight': tn(D, H), p + 'mlp.fc2.bias': torch.zeros(D),
        })
    return sd


def dinov2_vit_state_dict(registers=2, seed=0, **kwargs):
    """The same random ViT in the DINOv2 authors' layout: patch 14 on a
    70 px grid (5x5), LayerScale ``blocks.N.ls{1,2}.gamma`` (1e-5 init,
    DINOv2's), ``register_tokens`` ``(1, R, D)``, a ``mask_token``, no
    head."""
    kwargs = dict(dict(patch=14, img_size=70), **kwargs)
    sd = timm_vit_state_dict(seed=seed, **kwargs)
    for key in ('head.weight', 'head.bias'):
        sd.pop(key)
    D = sd['cls_token'].shape[-1]
    depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})
    for i in range(depth):
        for ls in ('ls1', 'ls2'):
            sd[f'blocks.{i}.{ls}.gamma'] = torch.full((D, ), 1e-5)
    g = torch.Generator().manual_seed(seed + 1)
    sd['mask_token'] = torch.zeros(1, D)
    if registers:
        sd['register_tokens'] = torch.randn(1, registers, D, generator=g) * 1e-6
    return sd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo_vit/vit-tiny_timm.pth')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--dinov2-registers', type=int, default=None,
                        help='write the DINOv2 layout instead (patch 14, '
                        'LayerScale) with this many register tokens')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    args = parser.parse_args(argv)
    from mmseg_davpt.utils.output_guard import check_output_file
    check_output_file(args.out, (), args.force, '--out')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if args.dinov2_registers is not None:
        torch.save(dinov2_vit_state_dict(args.dinov2_registers,
                                         seed=args.seed), args.out)
        print(f'wrote a random DINOv2-layout ViT (4 layers, 96 dims, patch '
              f'14, {args.dinov2_registers} registers) to {args.out}')
        return
    torch.save(timm_vit_state_dict(seed=args.seed), args.out)
    print(f'wrote a random timm-layout ViT (4 layers, 96 dims) to {args.out}')


if __name__ == '__main__':
    main()
