"""Few-shot classification of the unseen digits 5-9 in the VTAB-1k
file-list layout (``VTAB1k`` reads it): per seed, ``shots`` training and
``shots`` validation images per class, every other image of those classes
as the test set (used for nothing but the final score)."""
import json
import os
import os.path as osp
from typing import Dict

import numpy as np

from . import DIGITS_IMG_SIZE, DOWNSTREAM_CLASSES
from .images import digit_images

META_FILE = 'digits_cls.json'


def draw_cls_splits(digits: np.ndarray, seed: int, shots: int = 10
                    ) -> Dict[str, np.ndarray]:
    """Positions into ``digits`` ``(N,)`` of ``train`` / ``val`` / ``test``:
    per class, a ``seed``-drawn permutation gives the first ``shots``
    images to train, the next ``shots`` to val, the rest to test."""
    classes, counts = np.unique(digits, return_counts=True)
    if shots < 1 or 2 * shots >= counts.min():
        raise ValueError(
            f'shots must be in [1, {(counts.min() - 1) // 2}] so that every '
            f'class keeps test images (the smallest has {counts.min()}), got '
            f'{shots}')
    rng = np.random.default_rng(seed)
    parts = dict(train=[], val=[], test=[])
    for c in classes:
        order = rng.permutation(np.flatnonzero(digits == c))
        parts['train'].append(order[:shots])
        parts['val'].append(order[shots:2 * shots])
        parts['test'].append(order[2 * shots:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def make_digits_cls_data(root: str, seed: int, shots: int = 10
                         ) -> Dict[str, int]:
    """Write the digits 5-9 task for ``seed`` under ``root``.

    ``root/images/{scan:04d}.png`` (8-bit grey, 32x32, ``scan`` the row in
    ``load_digits()``), and split files ``train800.txt`` (``shots`` per
    class), ``val200.txt`` (``shots`` per class), ``train800val200.txt``
    (both) and ``test.txt`` (the rest), VTAB-1k's names although the counts
    differ; labels are ``digit - 5``. ``root/digits_cls.json`` records
    seed, shots and counts; a root already holding the same seed and shots
    is left as it is.

    Returns:
        Image counts per split.
    """
    import cv2
    meta_path = osp.join(root, META_FILE)
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get('seed') == seed and meta.get('shots') == shots:
            return meta['counts']
        raise ValueError(f'{root} holds the digits task for seed '
                         f'{meta.get("seed")}, shots {meta.get("shots")}; '
                         f'asked for seed {seed}, shots {shots}: use another '
                         'folder (e.g. data/digits/cls/seed{seed})')
    images, digits, scans = digit_images(DOWNSTREAM_CLASSES, DIGITS_IMG_SIZE)
    labels = digits - min(DOWNSTREAM_CLASSES)
    splits = draw_cls_splits(digits, seed, shots)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    names = [f'images/{s:04d}.png' for s in scans]
    for name, img in zip(names, images):
        cv2.imwrite(osp.join(root, name), img)
    files = dict(train800=splits['train'], val200=splits['val'],
                 train800val200=np.sort(np.concatenate([splits['train'],
                                                        splits['val']])),
                 test=splits['test'])
    for split, idx in files.items():
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.writelines(f'{names[i]} {labels[i]}\n' for i in idx)
    counts = {split: len(idx) for split, idx in files.items()}
    # Written last: its presence says the folder is complete.
    with open(meta_path, 'w') as f:
        json.dump(dict(seed=seed, shots=shots, counts=counts,
                       classes=[str(c) for c in DOWNSTREAM_CLASSES]), f,
                  indent=1)
    return counts
