#!/usr/bin/env python
"""Check a segmentation folder (images + label maps) before training.

    python tools/dataset_prep/check_seg_dataset.py DATA_ROOT
        [--img-dir img_dir] [--ann-dir ann_dir] [--img-suffix .jpg]
        [--seg-suffix .png] [--num-classes N] [--classes a b c ...]
        [--ignore-index 255] [--reduce-zero-label]

Pairs ``IMG_DIR/<split>/X<img-suffix>`` with ``ANN_DIR/<split>/X<seg-suffix>``
as MMSegmentation's ``BaseSegDataset`` does (splits: the sub-folders of
IMG_DIR, or IMG_DIR itself when it has none; IMG_DIR / ANN_DIR default to
``img_dir`` / ``ann_dir``, else ``images`` / ``masks``). Reports per split:
images without labels and labels without images (by name), files the suffix
filter skips, size mismatches, label modes (palette 'P' with its indices,
colour maps, 16-bit), values outside ``[0, N)`` other than the ignore index
(after ``--reduce-zero-label``), classes never present and the per-class
pixel share. Exits with 1 when training would fail or silently drop data.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a segmentation dataset folder')
    parser.add_argument('data_root')
    parser.add_argument('--img-dir', help='image folder under DATA_ROOT')
    parser.add_argument('--ann-dir', help='label folder under DATA_ROOT')
    parser.add_argument('--img-suffix', default='.jpg')
    parser.add_argument('--seg-suffix', default='.png')
    parser.add_argument('--num-classes', type=int,
                        help='N (default: len(--classes))')
    parser.add_argument('--classes', nargs='+', help='class names')
    parser.add_argument('--ignore-index', type=int, default=255)
    parser.add_argument('--reduce-zero-label', action='store_true',
                        help='labels 0 mean "unlabelled" (as the dataset '
                        'option): check ids after 0 -> 255, v -> v - 1')
    args = parser.parse_args(argv)
    if args.classes and args.num_classes is None:
        args.num_classes = len(args.classes)
    if args.classes and len(args.classes) != args.num_classes:
        parser.error(f'{len(args.classes)} --classes but --num-classes '
                     f'{args.num_classes}')
    if args.num_classes is not None and args.num_classes < 1:
        parser.error('--num-classes must be >= 1')
    if not osp.isdir(args.data_root):
        parser.error(f'no folder {args.data_root}')
    for name, default in (('img_dir', ('img_dir', 'images')),
                          ('ann_dir', ('ann_dir', 'masks'))):
        if getattr(args, name) is None:
            found = [d for d in default
                     if osp.isdir(osp.join(args.data_root, d))]
            if not found:
                parser.error(f'{args.data_root} has none of {default}; give '
                             f'--{name.replace("_", "-")}')
            setattr(args, name, found[0])
    return args


def print_split(report, classes, num_classes) -> None:
    print(f'\n== split {report.name or "(flat)"}: {report.num_pairs} '
          'image/label pairs')
    if report.modes:
        modes = ', '.join(f'{m} x{n}' for m, n in report.modes.items())
        print(f'label modes: {modes}')
    if report.palette_indices:
        print(f"palette ('P') indices used: {sorted(report.palette_indices)}")
    if report.pixels is not None and report.pixels.sum():
        total = report.pixels.sum() + report.ignored_pixels
        shares = ', '.join(f'{classes[i]} {c / total:.2%}'
                           for i, c in enumerate(report.pixels))
        print(f'pixel share: {shares}; ignored '
              f'{report.ignored_pixels / total:.2%}')
        absent = [classes[i] for i, c in enumerate(report.pixels) if c == 0]
        if absent:
            report.warnings.append(f'classes never present: {absent}')
    for w in report.warnings:
        print(f'WARNING: {w}')
    for e in report.errors:
        print(f'ERROR: {e}')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_davpt.datasets.seg_folder_check import check_split, find_splits
    classes = args.classes or [str(i) for i in range(args.num_classes or 0)]
    splits = find_splits(args.data_root, args.img_dir, args.ann_dir)
    print(f'{args.data_root}: images {args.img_dir}/*{args.img_suffix}, '
          f'labels {args.ann_dir}/*{args.seg_suffix}, splits '
          f'{[s or "(flat)" for s in splits]}, num_classes '
          f'{args.num_classes}, ignore index {args.ignore_index}'
          + (', reduce_zero_label' if args.reduce_zero_label else ''))
    if args.num_classes is None:
        print('(no --num-classes: ids are not range-checked)')
    failed = 0
    for split in splits:
        report = check_split(
            osp.join(args.data_root, args.img_dir, split),
            osp.join(args.data_root, args.ann_dir, split), split,
            args.img_suffix, args.seg_suffix, args.num_classes,
            args.ignore_index, args.reduce_zero_label)
        print_split(report, classes, args.num_classes)
        failed += len(report.errors)
    print(f'\n{"FAILED" if failed else "OK"}: {failed} problem(s) that make '
          'training fail or drop data')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
