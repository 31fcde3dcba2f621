#!/usr/bin/env python
"""Write the VPT-style ``train.json`` / ``val.json`` / ``test.json`` of an
FGVC dataset from its official train/test split.

The official training set is split into train/val (``--val-ratio 0.1``,
stratified per class, fixed ``--seed``); the official test set becomes
``test.json``. Oxford Flowers ships an official val split, which is used as
is (as in VPT, paper Table 6: 1,020 / 1,020 / 6,149). Class ids are written
0-based and contiguous (the sorted official ids mapped to ``0..K-1``). Keys
are image paths relative to the dataset's image folder (``FGVC_TASKS``:
``images/`` for CUB and NABirds, ``Images/`` for Stanford Dogs, the root for
Stanford Cars and Oxford Flowers).

Usage::

    # CUB-200-2011 (images.txt, image_class_labels.txt, train_test_split.txt)
    python tools/dataset_prep/make_fgvc_splits.py cub --root data/CUB_200_2011
    # NABirds ships the same three files
    python tools/dataset_prep/make_fgvc_splits.py nabirds --root data/nabirds
    # Stanford Dogs: [lists/]train_list.mat, test_list.mat, Images/
    python tools/dataset_prep/make_fgvc_splits.py stanford_dogs \\
        --root data/stanford_dogs
    # Stanford Cars: devkit/cars_train_annos.mat,
    # cars_test_annos_withlabels.mat, cars_train/, cars_test/
    python tools/dataset_prep/make_fgvc_splits.py stanford_cars \\
        --root data/stanford_cars
    # Oxford Flowers 102: imagelabels.mat, setid.mat, jpg/
    python tools/dataset_prep/make_fgvc_splits.py oxford_flowers \\
        --root data/oxford_flowers
    # any dataset given as "relative/path.jpg label" lists
    python tools/dataset_prep/make_fgvc_splits.py lists \\
        --train-list train.txt --test-list test.txt --out data/my_fgvc
"""
import argparse
import json
import math
import os
import os.path as osp
import random
import sys
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

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


# ------------------------------------------------------------ .mat files
# Stanford Dogs, Stanford Cars and Oxford Flowers ship their splits as
# MATLAB v5 files. loadmat(squeeze_me=True) turns MATLAB's (N, 1) cells and
# (1, N) struct arrays into flat arrays (a single entry into a 0-d one, which
# np.atleast_1d undoes).


def load_mat(path: str) -> dict:
    """The variables of a MATLAB file (scipy, squeezed)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found')
    from scipy.io import loadmat  # scipy comes with scikit-learn / mmpretrain
    try:
        return loadmat(path, squeeze_me=True)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise ValueError(f'{path}: not a readable MATLAB v5 file ({e})')


def mat_field(mat: dict, key: str, path: str) -> np.ndarray:
    """Variable ``key`` of a loaded MATLAB file as a 1-d array."""
    if key not in mat:
        have = sorted(k for k in mat if not k.startswith('__'))
        raise ValueError(f'{path}: no variable {key!r} (it has {have})')
    return np.atleast_1d(mat[key])


def _mat_int(value, path: str, what: str) -> int:
    """A MATLAB number (double / uint8) that must be a positive integer."""
    number = float(np.asarray(value).reshape(-1)[0])
    if number != int(number) or number < 1:
        raise ValueError(f'{path}: {what} {number:g} is not a positive '
                         f'(1-based) integer')
    return int(number)


def _mat_str(value) -> str:
    # a squeezed cell entry is a str; an unsqueezed one a 1-element array
    return str(np.asarray(value).reshape(-1)[0])


def find_file(root: str, name: str, folders: Sequence[str]) -> str:
    """``root/folder/name`` for the first folder that has it."""
    tried = [osp.join(root, folder, name) for folder in folders]
    for path in tried:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'{name} not found; looked for '
                            f'{", ".join(tried)}')


def read_stanford_dogs(root: str) -> Tuple[Split, Split]:
    """``(train, test)`` from Stanford Dogs' ``train_list.mat`` /
    ``test_list.mat`` (``lists.tar``, in ``root/lists/`` or ``root``).
    ``file_list`` holds ``breed_dir/img.jpg`` paths relative to
    ``Images/``; ``labels`` the 1-based breed ids (1..120)."""
    splits = []
    for name in ('train_list.mat', 'test_list.mat'):
        path = find_file(root, name, ('lists', ''))
        mat = load_mat(path)
        files = mat_field(mat, 'file_list', path)
        labels = mat_field(mat, 'labels', path)
        if len(files) != len(labels):
            raise ValueError(f'{path}: {len(files)} files but '
                             f'{len(labels)} labels')
        splits.append({_mat_str(f): _mat_int(c, path, 'label')
                       for f, c in zip(files, labels)})
    return splits[0], splits[1]


def read_cars_annotations(path: str, folder: str) -> Split:
    """``{folder/fname: class}`` from a Stanford Cars annotation file (a
    struct array ``annotations`` with ``bbox_*``, ``class``, ``fname``)."""
    annos = mat_field(load_mat(path), 'annotations', path)
    fields = annos.dtype.names or ()
    for key in ('fname', 'class'):
        if key not in fields:
            hint = (' (the devkit\'s cars_test_annos.mat has no labels: use '
                    'cars_test_annos_withlabels.mat)' if key == 'class'
                    else '')
            raise ValueError(f'{path}: annotations have no {key!r} field, '
                             f'only {list(fields)}{hint}')
    return {f'{folder}/{_mat_str(a["fname"])}':
            _mat_int(a['class'], path, 'class') for a in annos}


def read_stanford_cars(root: str) -> Tuple[Split, Split]:
    """``(train, test)`` of Stanford Cars. Keys are relative to the root:
    ``cars_train/00001.jpg``, ``cars_test/00001.jpg``; classes 1..196.
    ``devkit/cars_meta.mat`` (``class_names``), when present, bounds them."""
    train = read_cars_annotations(
        find_file(root, 'cars_train_annos.mat', ('devkit', '')), 'cars_train')
    # The labelled test annotations were released after the devkit; they
    # usually sit in the root, sometimes in devkit/.
    test = read_cars_annotations(
        find_file(root, 'cars_test_annos_withlabels.mat', ('', 'devkit')),
        'cars_test')
    meta = osp.join(root, 'devkit', 'cars_meta.mat')
    if osp.isfile(meta):
        num = len(mat_field(load_mat(meta), 'class_names', meta))
        top = max(max(train.values()), max(test.values()))
        if top > num:
            raise ValueError(f'class id {top} in the annotations, but '
                             f'{meta} names only {num} classes')
    return train, test


def read_oxford_flowers(root: str) -> Tuple[Split, Split, Split]:
    """``(train, val, test)`` of Oxford Flowers 102: ``imagelabels.mat``
    (``labels``, 1-based, one per image) and ``setid.mat`` (``trnid``,
    ``valid``, ``tstid``: 1-based image ids of ``jpg/image_%05d.jpg``).
    The official val split is kept (VPT's 1,020 / 1,020 / 6,149)."""
    path = osp.join(root, 'imagelabels.mat')
    labels = mat_field(load_mat(path), 'labels', path)
    setid_path = osp.join(root, 'setid.mat')
    setid = load_mat(setid_path)
    splits, seen = [], {}
    for key in ('trnid', 'valid', 'tstid'):
        split = {}
        for value in mat_field(setid, key, setid_path):
            i = _mat_int(value, setid_path, f'{key} image id')
            if i > len(labels):
                raise ValueError(f'{setid_path}: {key} image id {i} beyond '
                                 f'the {len(labels)} labels of {path}')
            if i in seen:
                raise ValueError(f'{setid_path}: image id {i} is in both '
                                 f'{seen[i]} and {key}')
            seen[i] = key
            split[f'jpg/image_{i:05d}.jpg'] = _mat_int(
                labels[i - 1], path, f'label of image {i}')
        splits.append(split)
    return splits[0], splits[1], splits[2]


def split_train_val(train: Split, val_ratio: float,
                    seed: int) -> Tuple[Split, Split]:
    """Split ``train`` into (train, val), stratified per class, with
    ``ceil(len(train) * val_ratio)`` val images in total (ceil: the val
    sizes of VPT's released splits, paper Table 6: 600 of CUB's 5,994, 815
    of Stanford Cars' 8,144, 2,393 of NABirds' 23,929); every class keeps
    at least one training image. Deterministic for a seed."""
    if not 0 <= val_ratio < 1:
        raise ValueError(f'val ratio must be in [0, 1), got {val_ratio}')
    rng = random.Random(seed)
    by_class = defaultdict(list)
    for rel in sorted(train):  # sorted: independent of the input order
        by_class[train[rel]].append(rel)
    quota = {c: int(round(len(v) * val_ratio, 6))
             for c, v in by_class.items()}
    # Hand the rounding remainder to random classes that can spare one.
    # round() first: 30 * 0.2 is 6.000000000000001 in floating point
    left = math.ceil(round(len(train) * val_ratio, 6)) - sum(quota.values())
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
    """Write ``{out}/{train,val,test}.json``; no image may be in two."""
    named = dict(train=train, val=val, test=test)
    for a, b in (('train', 'test'), ('train', 'val'), ('val', 'test')):
        overlap = set(named[a]) & set(named[b])
        if overlap:
            raise ValueError(f'{len(overlap)} images are in both the {a} '
                             f'and the {b} list, e.g. '
                             f'{sorted(overlap)[0]!r}')
    os.makedirs(out, exist_ok=True)
    for name, split in (('train', train), ('val', val), ('test', test)):
        with open(osp.join(out, f'{name}.json'), 'w') as f:
            json.dump(split, f, indent=0)


# subcommand -> (reader of (train, test) or (train, val, test), help)
MAT_READERS = dict(
    stanford_dogs=(read_stanford_dogs, '[lists/]train_list.mat, '
                   'test_list.mat (keys relative to Images/)'),
    stanford_cars=(read_stanford_cars, 'devkit/cars_train_annos.mat, '
                   'cars_test_annos_withlabels.mat (keys cars_train/..., '
                   'cars_test/...)'),
    oxford_flowers=(read_oxford_flowers, 'imagelabels.mat, setid.mat '
                    '(official train/val/test kept; keys jpg/...)'),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest='source', required=True)
    for name in ('cub', 'nabirds'):
        p = sub.add_parser(name, help=f'{name}: images.txt + '
                           'image_class_labels.txt + train_test_split.txt')
        p.add_argument('--root', required=True,
                       help='folder with the three official files')
        p.add_argument('--out', help='output folder (default: --root)')
    for name, (_, help_text) in MAT_READERS.items():
        p = sub.add_parser(name, help=f'{name}: {help_text}')
        p.add_argument('--root', required=True,
                       help='the unpacked dataset folder')
        p.add_argument('--out', help='output folder (default: --root)')
    p = sub.add_parser('lists', help='"path label" train/test lists')
    p.add_argument('--train-list', required=True)
    p.add_argument('--test-list', required=True)
    p.add_argument('--val-list', help='an official val list: used as is '
                   'instead of splitting the train list')
    p.add_argument('--out', required=True)
    for name, p in sub.choices.items():
        if name == 'oxford_flowers':
            continue  # official val split, nothing to draw
        p.add_argument('--val-ratio', type=float, default=0.1)
        p.add_argument('--seed', type=int, default=0)
    for p in sub.choices.values():
        p.add_argument('--force', action='store_true',
                       help='replace existing train/val/test.json in the '
                       'output folder')
    return parser


def read_source(args) -> Tuple[Split, Split, Split, str]:
    """``(train, val or None, test, out)`` of the chosen subcommand, with the
    official class ids."""
    if args.source == 'lists':
        val = read_list(args.val_list) if args.val_list else None
        return (read_list(args.train_list), val, read_list(args.test_list),
                args.out)
    out = args.out or args.root
    if args.source in ('cub', 'nabirds'):
        train, test = read_cub_style(args.root)
        return train, None, test, out
    splits = MAT_READERS[args.source][0](args.root)
    if len(splits) == 3:
        return splits[0], splits[1], splits[2], out
    return splits[0], None, splits[1], out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from mmseg_davpt.utils.output_guard import check_output_folder
    try:
        train, val, test, out = read_source(args)
        # before the (possibly slow) split; the lists read are never
        # written over
        check_output_folder(
            out, ('train.json', 'val.json', 'test.json'),
            [getattr(args, k, None) for k in ('train_list', 'val_list',
                                              'test_list')],
            args.force, '--out')
        if val is None:
            train, val = split_train_val(train, args.val_ratio, args.seed)
        train, val, test = zero_based(train, val, test)
        write_splits(out, train, val, test)
    except (OSError, ValueError) as e:  # OutputPathError included
        print(f'error: {e}', file=sys.stderr)
        return 1
    classes = len(set(train.values()) | set(val.values()) |
                  set(test.values()))
    print(f'{out}: train {len(train)}, val {len(val)}, test {len(test)} '
          f'images, {classes} classes (ids 0..{classes - 1})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
