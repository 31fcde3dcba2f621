"""Digit scenes: the segmentation task downstream of the digits ViT.

Each 64x64 scene shows 1-3 handwritten digits of classes 5-9 (real 8x8
scans from ``sklearn.datasets.load_digits``, upsampled bilinearly to a random
size) on a textured, noisy background. A pixel's label is the digit's class
where its ink is (the upsampled scan above ``ink_threshold``), background
elsewhere. Scenes of different splits are built from disjoint scans, so a
test digit was never seen in training. MMSegmentation's folder layout::

    root/img_dir/{train,val,test,trainval}/NAME.png   RGB scenes (grey ink)
    root/ann_dir/{train,val,test,trainval}/NAME.png   uint8 label maps
    root/meta.json                                    classes, scan ids, ...

``trainval`` holds copies of the ``train`` and ``val`` scenes (names
prefixed ``train_`` / ``val_``) for the final run, which trains on both.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .images import SCAN_MAX

#: label 0 is the background, label ``i`` (1-5) is digit ``i + 4``
SCENE_CLASSES = ('background', '5', '6', '7', '8', '9')
SCENE_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                 [0, 130, 200], [245, 130, 48]]
DIGITS = (5, 6, 7, 8, 9)
SPLITS = ('train', 'val', 'test')
#: default scenes per split (train, val, test)
NUM_SCENES = (200, 60, 120)
#: default fraction of each class's scans given to each split
SCAN_FRACTIONS = (0.5, 0.2, 0.3)


def split_scans(targets: np.ndarray, seed: int,
                fractions: Sequence[float] = SCAN_FRACTIONS,
                digits: Sequence[int] = DIGITS) -> Dict[str, np.ndarray]:
    """Disjoint scan indices per split: each class of ``digits`` is shuffled
    by ``seed`` and cut by ``fractions`` (train, val, test), so every split
    has every class."""
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or \
            sum(fractions) > 1 + 1e-9:
        raise ValueError(f'fractions must be {len(SPLITS)} positive numbers '
                         f'summing to at most 1, got {tuple(fractions)}')
    rng = np.random.default_rng(seed)
    parts: Dict[str, List[np.ndarray]] = {s: [] for s in SPLITS}
    for digit in digits:
        idx = rng.permutation(np.flatnonzero(targets == digit))
        cuts = np.floor(np.cumsum(fractions) * len(idx)).astype(int)
        for split, lo, hi in zip(SPLITS, [0, *cuts[:-1]], cuts):
            if hi <= lo:
                raise ValueError(f'digit {digit}: {len(idx)} scans leave '
                                 f'split {split!r} empty')
            parts[split].append(idx[lo:hi])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def _upsample(scan: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` float ink in [0, 1] from an 8x8 scan (0-16),
    bilinear as in the digits pretraining."""
    t = torch.from_numpy(scan.astype(np.float32) / SCAN_MAX)[None, None]
    up = F.interpolate(t, size=(size, size), mode='bilinear',
                       align_corners=False)
    return up[0, 0].clamp(0, 1).numpy()


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """``(size, size)`` float grey background: a dark base level, a
    sinusoidal texture and pixel noise."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    base = rng.uniform(10, 70)
    texture = rng.uniform(10, 30) * np.sin(
        2 * np.pi * (rng.uniform(1, 5) * yy + rng.uniform(1, 5) * xx +
                     rng.uniform()))
    return base + texture + rng.normal(0, 10, (size, size))


def _place(size: int, boxes: List[Tuple[int, int, int]], side: int,
           rng: np.random.Generator, tries: int = 20):
    """Top-left corner for a ``side`` square that overlaps no box, or
    ``None`` after ``tries`` draws."""
    for _ in range(tries):
        y, x = rng.integers(0, size - side + 1, 2)
        if all(y + side <= by or by + bs <= y or x + side <= bx or
               bx + bs <= x for by, bx, bs in boxes):
            return int(y), int(x)
    return None


def render_scene(scans: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator, size: int = 64,
                 scale: Tuple[int, int] = (16, 32),
                 ink_threshold: float = 0.35) -> Tuple[np.ndarray, np.ndarray]:
    """One scene from candidate ``scans`` ``(N, 8, 8)`` (0-16) with scene
    labels ``labels`` ``(N,)`` (1-5): 1-3 of them, each upsampled to a side
    drawn from ``scale`` and pasted without overlap. Returns the RGB image
    ``(size, size, 3)`` uint8 and the label map ``(size, size)`` uint8."""
    img = _background(size, rng)
    label = np.zeros((size, size), np.uint8)
    boxes: List[Tuple[int, int, int]] = []
    count = min(int(rng.integers(1, 4)), len(scans))
    for i in rng.choice(len(scans), size=count, replace=False):
        side = int(rng.integers(scale[0], scale[1] + 1))
        corner = _place(size, boxes, side, rng)
        if corner is None:
            continue
        y, x = corner
        boxes.append((y, x, side))
        ink = _upsample(scans[i], side)
        brightness = rng.uniform(150, 255)
        window = img[y:y + side, x:x + side]
        img[y:y + side, x:x + side] = window + ink * (brightness - window)
        label[y:y + side, x:x + side][ink > ink_threshold] = labels[i]
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255)
    return np.repeat(img.astype(np.uint8)[..., None], 3, axis=2), label


def _save(root: str, split: str, name: str, img: np.ndarray,
          label: np.ndarray) -> None:
    Image.fromarray(img).save(osp.join(root, 'img_dir', split, name))
    Image.fromarray(label).save(osp.join(root, 'ann_dir', split, name))


def make_digit_scenes(root: str, seed: int = 0,
                      num_scenes: Sequence[int] = NUM_SCENES,
                      size: int = 64, scale: Tuple[int, int] = (16, 32),
                      ink_threshold: float = 0.35,
                      fractions: Sequence[float] = SCAN_FRACTIONS) -> str:
    """Write the digit scenes of ``seed`` under ``root`` (see the module
    docstring for the layout); the same arguments give the same bytes.

    Args:
        root: output folder; existing files of the same names are
            overwritten.
        seed: draws the scan split and every scene.
        num_scenes: scenes in ``train``, ``val`` and ``test``.
        size: scene side in pixels.
        scale: smallest and largest digit side in pixels (8x8 scans are
            upsampled to it).
        ink_threshold: upsampled ink level (0-1) from which a pixel is
            labelled as the digit.
        fractions: share of each class's scans in each split.

    Returns:
        ``root``.
    """
    from sklearn.datasets import load_digits
    if len(num_scenes) != len(SPLITS) or min(num_scenes) < 1:
        raise ValueError(f'num_scenes must be {len(SPLITS)} positive counts '
                         f'(train, val, test), got {tuple(num_scenes)}')
    if not 0 < scale[0] <= scale[1] <= size:
        raise ValueError(f'scale must satisfy 0 < min <= max <= size '
                         f'({size}), got {tuple(scale)}')
    if not 0 < ink_threshold < 1:
        raise ValueError(f'ink_threshold must be in (0, 1), got '
                         f'{ink_threshold}')
    digits = load_digits()
    images, targets = digits.images, digits.target
    scan_ids = split_scans(targets, seed, fractions)
    rng = np.random.default_rng([seed, 1])
    for split in (*SPLITS, 'trainval'):
        for sub in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
    for split, count in zip(SPLITS, num_scenes):
        ids = scan_ids[split]
        scans, labels = images[ids], targets[ids] - DIGITS[0] + 1
        for i in range(count):
            img, label = render_scene(scans, labels, rng, size, scale,
                                      ink_threshold)
            name = f'{i:04d}.png'
            _save(root, split, name, img, label)
            if split in ('train', 'val'):
                for sub in ('img_dir', 'ann_dir'):
                    shutil.copyfile(osp.join(root, sub, split, name),
                                    osp.join(root, sub, 'trainval',
                                             f'{split}_{name}'))
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(dict(classes=SCENE_CLASSES, palette=SCENE_PALETTE,
                       seed=seed, size=size, scale=list(scale),
                       ink_threshold=ink_threshold,
                       num_scenes=dict(zip(SPLITS, map(int, num_scenes))),
                       scan_ids={s: v.tolist() for s, v in scan_ids.items()}),
                  f, indent=1)
    return root
