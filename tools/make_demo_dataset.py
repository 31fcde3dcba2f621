#!/usr/bin/env python
"""Generate the embedded demo dataset (MMSegmentation folder layout)."""
import argparse
import os.path as osp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--root', default='data/demo_shapes')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the dataset exists')
    args = parser.parse_args(argv)
    if osp.isfile(osp.join(args.root, 'meta.json')) and not args.force:
        print(f'{args.root} exists (use --force to regenerate)')
        return
    from mmseg_davpt.datasets import generate_demo_shapes
    generate_demo_shapes(args.root, args.num_train, args.num_val, args.size,
                         args.seed, progress=True)
    print(f'wrote {args.num_train} train + {args.num_val} val images '
          f'({args.size}x{args.size}) to {args.root}')


if __name__ == '__main__':
    main()
