#!/usr/bin/env python
"""Pretrain the digits ViT on digits 0-4 and save it in timm's key layout
(the "ImageNet" model of the digits transfer experiment).

Examples::

    python tools/pretrain_digits_vit.py --out data/digits/vit-digits_timm.pth
    python tools/convert_vit_checkpoint.py data/digits/vit-digits_timm.pth \\
        data/digits/vit-digits_mmseg.pth
    # linear probe on the unseen digits 5-9: pretrained vs random ViT
    python tools/pretrain_digits_vit.py --out data/digits/vit-digits_timm.pth \\
        --probe-only
"""
import argparse
import os.path as osp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/digits/vit-digits_timm.pth',
                        help='timm-layout .pth to write (or probe)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--epochs', type=int, default=None,
                        help='pretraining epochs (default: the function\'s)')
    parser.add_argument('--probe', action='store_true',
                        help='after pretraining, print the linear-probe '
                        'accuracy on digits 5-9 of the pretrained and of a '
                        'random ViT')
    parser.add_argument('--probe-only', action='store_true',
                        help='probe the existing --out file, no training')
    parser.add_argument('--shots', type=int, default=10,
                        help='probe images per class')
    args = parser.parse_args(argv)

    from mmseg_davpt.digits.pretrain import pretrain_digits_vit
    from mmseg_davpt.digits.probe import format_probe, probe_gap
    if args.probe_only:
        if not osp.isfile(args.out):
            parser.error(f'--probe-only: no such file {args.out}')
    else:
        kwargs = {} if args.epochs is None else dict(epochs=args.epochs)
        pretrain_digits_vit(args.out, seed=args.seed, **kwargs)
    if args.probe or args.probe_only:
        result = probe_gap(args.out, shots=args.shots)
        print(format_probe(result, osp.basename(args.out)))
        return result


if __name__ == '__main__':
    main()
