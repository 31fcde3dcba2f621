#!/usr/bin/env python
"""Generate a small classification dataset in the VTAB-1k or FGVC format
(coloured shapes, one class per colour/shape) for the CPU demo and tests."""
import argparse


def parse_counts(text):
    """``'train800=80,val200=20'`` -> ``{'train800': 80, 'val200': 20}``."""
    counts = {}
    for item in filter(None, text.split(',')):
        split, sep, count = item.partition('=')
        if not sep or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f'expected SPLIT=COUNT[,SPLIT=COUNT...], got {item!r}')
        counts[split.strip()] = int(count)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--layout', choices=('vtab', 'fgvc'), required=True)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num-classes', type=int, default=4)
    parser.add_argument(
        '--per-split', type=parse_counts, default=None,
        help='images per split, e.g. "train800=80,val200=20,test=40" '
        '(vtab) or "train=72,val=8,test=40" (fgvc)')
    parser.add_argument('--img-size', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ext', choices=('.jpg', '.png'), default='.jpg')
    parser.add_argument('--force', action='store_true',
                        help='replace the split files of an existing '
                        'dataset in --out')
    args = parser.parse_args(argv)
    from mmseg_davpt.datasets.cls_demo import (generate_cls_folders,
                                               split_file_names)
    from mmseg_davpt.utils.output_guard import check_output_folder
    check_output_folder(args.out, split_file_names(args.layout), (),
                        args.force, '--out')
    generate_cls_folders(args.out, args.layout, args.num_classes,
                         args.per_split, args.img_size, args.seed, args.ext)
    prefix = '' if args.layout == 'vtab' else ", image_prefix='images'"
    print(f'wrote a {args.num_classes}-class {args.layout} dataset to '
          f'{args.out} (load it with num_classes={args.num_classes}'
          f'{prefix})')


if __name__ == '__main__':
    main()
