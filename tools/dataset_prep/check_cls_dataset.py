#!/usr/bin/env python
"""Check a VTAB-1k task folder or an FGVC folder before training.

Parses every split with the ``VTAB1k`` / ``FGVC`` dataset classes, checks
that every image exists and that evaluation images do not leak into the
training splits, and prints the number of images and classes per split.
Exits non-zero with the dataset's error message on a problem.

Usage::

    python tools/dataset_prep/check_cls_dataset.py data/vtab-1k/cifar
    python tools/dataset_prep/check_cls_dataset.py data/CUB_200_2011 \\
        --task cub
    python tools/dataset_prep/check_cls_dataset.py data/my_fgvc \\
        --layout fgvc --image-prefix images --num-classes 10
"""
import argparse
import os.path as osp
import sys


# Pairs of splits that must not share images.
DISJOINT = dict(vtab=[('train800', 'val200'), ('train800val200', 'test')],
                fgvc=[('train', 'val'), ('train', 'test'), ('val', 'test')])


def detect_layout(root: str) -> str:
    """``'vtab'`` if ``root`` has VTAB-1k ``.txt`` split files, ``'fgvc'``
    if it has FGVC ``.json`` ones."""
    from mmseg_davpt.datasets.fgvc import FGVC_SPLITS
    from mmseg_davpt.datasets.vtab1k import VTAB_SPLITS, folder_contents
    if any(osp.isfile(osp.join(root, f'{s}.txt')) for s in VTAB_SPLITS):
        return 'vtab'
    if any(osp.isfile(osp.join(root, f'{s}.json')) for s in FGVC_SPLITS):
        return 'fgvc'
    raise FileNotFoundError(
        f'no VTAB-1k (train800.txt, ...) or FGVC (train.json, ...) split '
        f'files in {root!r}; {folder_contents(root)}')


def build(layout: str, root: str, split: str, args):
    """The dataset object of one split (no pipeline)."""
    from mmseg_davpt.datasets import FGVC, VTAB1k
    kwargs = dict(data_root=root, split=split, num_classes=args.num_classes,
                  task=args.task, serialize_data=False)
    if layout == 'vtab':
        return VTAB1k(**kwargs)
    return FGVC(image_prefix=args.image_prefix, **kwargs)


def check(root: str, args) -> None:
    """Raise ``FileNotFoundError`` / ``ValueError`` on the first problem;
    print a per-split summary otherwise."""
    from mmseg_davpt.datasets.fgvc import FGVC_SPLITS
    from mmseg_davpt.datasets.vtab1k import VTAB_SPLITS, VTAB_TASKS
    layout = args.layout or detect_layout(root)
    if layout == 'vtab' and args.task is None and args.num_classes is None:
        name = osp.basename(osp.normpath(root))
        if name not in VTAB_TASKS:
            raise ValueError(f'{root!r}: folder name {name!r} is not a known '
                             f'VTAB-1k task; pass --task or --num-classes')
        args.task = name
        print(f'task {name!r} (from the folder name)')
    splits = args.splits or (VTAB_SPLITS if layout == 'vtab'
                             else FGVC_SPLITS)
    paths = {}
    for split in splits:
        dataset = build(layout, root, split, args)
        items = [dataset.get_data_info(i) for i in range(len(dataset))]
        missing = [d['img_path'] for d in items
                   if not osp.isfile(d['img_path'])]
        if missing:
            raise FileNotFoundError(
                f'{dataset.ann_file}: {len(missing)} of {len(items)} images '
                f'not found, e.g. {missing[:3]}')
        paths[split] = {d['img_path'] for d in items}
        labels = {d['gt_label'] for d in items}
        print(f'{split:>15}: {len(items):6d} images, {len(labels):4d} of '
              f'{dataset.num_classes} classes')
    for a, b in DISJOINT[layout]:
        shared = paths.get(a, set()) & paths.get(b, set())
        if shared:
            raise ValueError(f'{len(shared)} images are in both {a} and {b}'
                             f' of {root!r}, e.g. {sorted(shared)[0]!r}')
    if layout == 'vtab' and {'train800', 'val200', 'train800val200'} <= set(
            paths) and paths['train800'] | paths['val200'] != paths[
                'train800val200']:
        # Some releases store train800val200 images separately: legal,
        # but then the hyperparameter search saw other images.
        print('note: train800val200 is not the union of train800 and '
              'val200 (by image path)')
    print(f'{layout} dataset {root!r}: OK, {dataset.num_classes} classes')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('root', help='task / dataset folder')
    parser.add_argument('--layout', choices=('vtab', 'fgvc'),
                        help='default: detected from the split files')
    parser.add_argument('--task', help='VTAB_TASKS / FGVC_TASKS name (a '
                        'VTAB folder named after its task needs none)')
    parser.add_argument('--num-classes', type=int)
    parser.add_argument('--image-prefix', help='FGVC: folder the json paths '
                        'are relative to (default: from --task, else "")')
    parser.add_argument('--splits', nargs='+', help='default: all splits')
    args = parser.parse_args(argv)
    try:
        check(args.root, args)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
