#!/usr/bin/env python
"""Generate the digit scenes of one seed (MMSegmentation folder layout):
64x64 scenes of 1-3 digits 5-9 on a textured background, train / val / test
from disjoint digit scans, plus a trainval folder for the final run."""
import argparse
import os.path as osp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--root', default=None,
                        help='output folder (default data/digits/seg/seed'
                        '{seed})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-scenes', type=int, nargs=3, default=None,
                        metavar=('TRAIN', 'VAL', 'TEST'))
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the scenes exist')
    args = parser.parse_args(argv)
    from mmseg_davpt.digits.scenes import NUM_SCENES, make_digit_scenes
    root = args.root or f'data/digits/seg/seed{args.seed}'
    num_scenes = args.num_scenes or NUM_SCENES
    if osp.isfile(osp.join(root, 'meta.json')) and not args.force:
        print(f'{root} exists (use --force to regenerate)')
        return root
    make_digit_scenes(root, seed=args.seed, num_scenes=num_scenes)
    print(f'wrote digit scenes (seed {args.seed}: {num_scenes[0]} train, '
          f'{num_scenes[1]} val, {num_scenes[2]} test) to {root}')
    return root


if __name__ == '__main__':
    main()
