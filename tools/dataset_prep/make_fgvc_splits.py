#!/usr/bin/env python
"""Write the VPT-style ``train.json`` / ``val.json`` / ``test.json`` of an
FGVC dataset from its official train/test split.

The official training set is split into train/val (``--val-ratio 0.1``,
stratified per class, fixed ``--seed``); the official test set becomes
``test.json``. Class ids are written 0-based and contiguous (the sorted
official ids mapped to ``0..K-1``). Keys are image paths relative to the
dataset's image folder (``images/`` for CUB and NABirds).

Usage::

    # CUB-200-2011 (images.txt, image_class_labels.txt, train_test_split.txt)
    python tools/dataset_prep/make_fgvc_splits.py cub --root data/CUB_200_2011
    # NABirds ships the same three files
    python tools/dataset_prep/make_fgvc_splits.py nabirds --root data/nabirds
    # any dataset given as "relative/path.jpg label" lists
    python tools/dataset_prep/make_fgvc_splits.py lists \\
        --train-list train.txt --test-list test.txt --out data/stanford_dogs
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

Split = Dict[str, int]


def read_columns(path: str, ncols: int) -> List[List[str]]:
    """Whitespace-separated rows of ``path``; the last column keeps any
    spaces (file names)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found')
    rows = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=ncols - 1)
            if len(parts) != ncols:
                raise ValueError(f'{path}, line {lineno}: expected {ncols} '
                                 f'columns, got {line!r}')
            rows.append(parts)
    return rows


def _int(text: str, path: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'{path}: {what} {text!r} is not an integer')


def read_cub_style(root: str) -> Tuple[Split, Split]:
    """``(train, test)`` from CUB-200-2011 / NABirds' ``images.txt``,
    ``image_class_labels.txt`` and ``train_test_split.txt`` (image ids may
    be numbers (CUB) or UUIDs (NABirds); class ids are the official ones)."""
    files = [osp.join(root, name) for name in
             ('images.txt', 'image_class_labels.txt', 'train_test_split.txt')]
    paths = dict(read_columns(files[0], 2))
    labels = {i: _int(c, files[1], 'class id')
              for i, c in read_columns(files[1], 2)}
    is_train = {i: _int(t, files[2], 'is_training_image')
                for i, t in read_columns(files[2], 2)}
    for path, table in zip(files[1:], (labels, is_train)):
        missing = set(paths) - set(table)
        if missing:
            raise ValueError(f'{path} has no entry for {len(missing)} image '
                             f'ids of {files[0]}, e.g. {sorted(missing)[0]}')
    train, test = {}, {}
    for image_id, rel in paths.items():  # official order
        (train if is_train[image_id] else test)[rel] = labels[image_id]
    return train, test


def read_list(path: str) -> Split:
    """``{relative/path.jpg: label}`` from a ``path label`` text file (the
    label is the last column, so paths may contain spaces)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found')
    split = {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().rsplit(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f'{path}, line {lineno}: expected '
                                 f'"relative/path.jpg label", got {line!r}')
            split[parts[0]] = _int(parts[1], f'{path}, line {lineno}',
                                   'label')
    return split


def split_train_val(train: Split, val_ratio: float,
                    seed: int) -> Tuple[Split, Split]:
    """Split ``train`` into (train, val), stratified per class, with
    ``round(len(train) * val_ratio)`` val images in total; every class keeps
    at least one training image. Deterministic for a seed."""
    if not 0 <= val_ratio < 1:
        raise ValueError(f'val ratio must be in [0, 1), got {val_ratio}')
    rng = random.Random(seed)
    by_class = defaultdict(list)
    for rel in sorted(train):  # sorted: independent of the input order
        by_class[train[rel]].append(rel)
    quota = {c: int(len(v) * val_ratio) for c, v in by_class.items()}
    # Hand the rounding remainder to random classes that can spare one.
    left = round(len(train) * val_ratio) - sum(quota.values())
    spare = [c for c in sorted(by_class) if len(by_class[c]) - quota[c] > 1]
    for c in rng.sample(spare, min(max(left, 0), len(spare))):
        quota[c] += 1
    val_keys = set()
    for c in sorted(by_class):
        val_keys.update(rng.sample(by_class[c], quota[c]))
    return ({k: v for k, v in train.items() if k not in val_keys},
            {k: v for k, v in train.items() if k in val_keys})


def zero_based(*splits: Split) -> List[Split]:
    """Map the sorted union of the class ids to ``0..K-1`` in every split."""
    ids = sorted({c for s in splits for c in s.values()})
    index = {c: i for i, c in enumerate(ids)}
    return [{k: index[c] for k, c in s.items()} for s in splits]


def write_splits(out: str, train: Split, val: Split, test: Split) -> None:
    """Write ``{out}/{train,val,test}.json``."""
    overlap = set(train) & set(test)
    if overlap:
        raise ValueError(f'{len(overlap)} images are in both the train and '
                         f'the test list, e.g. {sorted(overlap)[0]!r}')
    os.makedirs(out, exist_ok=True)
    for name, split in (('train', train), ('val', val), ('test', test)):
        with open(osp.join(out, f'{name}.json'), 'w') as f:
            json.dump(split, f, indent=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest='source', required=True)
    for name in ('cub', 'nabirds'):
        p = sub.add_parser(name, help=f'{name}: images.txt + '
                           'image_class_labels.txt + train_test_split.txt')
        p.add_argument('--root', required=True,
                       help='folder with the three official files')
        p.add_argument('--out', help='output folder (default: --root)')
    p = sub.add_parser('lists', help='"path label" train/test lists')
    p.add_argument('--train-list', required=True)
    p.add_argument('--test-list', required=True)
    p.add_argument('--val-list', help='an official val list (e.g. Oxford '
                   'Flowers): used as is instead of splitting the train list')
    p.add_argument('--out', required=True)
    for p in sub.choices.values():
        p.add_argument('--val-ratio', type=float, default=0.1)
        p.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.source == 'lists':
            train, test = read_list(args.train_list), read_list(args.test_list)
            val = read_list(args.val_list) if args.val_list else None
            out = args.out
        else:
            train, test = read_cub_style(args.root)
            val, out = None, args.out or args.root
        if val is None:
            train, val = split_train_val(train, args.val_ratio, args.seed)
        train, val, test = zero_based(train, val, test)
        write_splits(out, train, val, test)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    classes = len(set(train.values()) | set(test.values()))
    print(f'{out}: train {len(train)}, val {len(val)}, test {len(test)} '
          f'images, {classes} classes (ids 0..{classes - 1})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
