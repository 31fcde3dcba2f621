"""A small generated segmentation dataset for the embedded demo and tests.

Images show 1-3 coloured shapes (disc, square, triangle, ring) on a noisy,
textured background; label maps mark each shape's class, 0 elsewhere. The
layout is MMSegmentation's standard one::

    root/img_dir/{train,val}/0000.png    RGB images
    root/ann_dir/{train,val}/0000.png    uint8 label maps
    root/meta.json                       classes, palette, seed, sizes
"""
import json
import os
import os.path as osp
import time
from typing import Tuple

import numpy as np
from mmengine.utils import ProgressBar
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

CLASSES = ('background', 'disc', 'square', 'triangle', 'ring')
PALETTE = [[0, 0, 0], [220, 20, 60], [0, 128, 255], [255, 200, 0],
           [60, 180, 75]]
# Mean colour of each shape class; every image jitters it, so colour alone
# is a strong but imperfect cue (shape has to help).
SHAPE_COLOURS = np.array([[200, 60, 60], [60, 110, 210], [210, 190, 50],
                          [70, 180, 90]], dtype=np.float32)


@DATASETS.register_module()
class DemoShapesDataset(BaseSegDataset):
    """The generated demo dataset (``generate_demo_shapes``); class 0 is the
    background, a real class here (not the ignore index)."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, img_suffix='.png', seg_map_suffix='.png',
                 reduce_zero_label=False, **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask ``(size, size)`` of one random shape of class ``kind``."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    r = rng.uniform(0.16, 0.28) * size
    cy, cx = rng.uniform(r, size - r, 2)
    if kind == 1:  # disc
        return (yy - cy)**2 + (xx - cx)**2 <= r**2
    if kind == 2:  # square
        return (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    if kind == 3:  # upward triangle
        top, bottom = cy - r, cy + r
        half = (yy - top) / 2  # base width 2r
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)
    d2 = (yy - cy)**2 + (xx - cx)**2  # ring
    return (d2 <= r**2) & (d2 >= (0.55 * r)**2)


def _sample(size: int, rng: np.random.Generator) -> Tuple[np.ndarray,
                                                          np.ndarray]:
    """One image ``(size, size, 3)`` uint8 and its label map ``(size,
    size)`` uint8."""
    base = rng.uniform(60, 160, 3)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    texture = 25 * np.sin(2 * np.pi * (rng.uniform(1, 4) * yy +
                                       rng.uniform(1, 4) * xx))[..., None]
    img = base + texture + rng.normal(0, 12, (size, size, 3))
    label = np.zeros((size, size), np.uint8)
    for kind in rng.choice(np.arange(1, len(CLASSES)),
                           size=rng.integers(1, 4), replace=False):
        mask = _shape_mask(int(kind), size, rng)
        colour = SHAPE_COLOURS[kind - 1] + rng.normal(0, 20, 3)
        img[mask] = colour + rng.normal(0, 10, (int(mask.sum()), 3))
        label[mask] = kind
    return np.clip(img, 0, 255).astype(np.uint8), label


def generate_demo_shapes(root: str, num_train: int = 200,
                         num_val: int = 40, img_size: int = 64,
                         seed: int = 0, progress: bool = False) -> str:
    """Write the demo dataset under ``root`` (deterministic for a seed).

    ``progress=True`` shows a progress bar once generation has taken more
    than a second. Returns ``root``. Existing files are overwritten.
    """
    rng = np.random.default_rng(seed)
    total, done, bar = num_train + num_val, 0, None
    start = time.perf_counter()
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(root, 'img_dir', split)
        ann_dir = osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            img, label = _sample(img_size, rng)
            Image.fromarray(img).save(osp.join(img_dir, f'{i:04d}.png'))
            Image.fromarray(label).save(osp.join(ann_dir, f'{i:04d}.png'))
            done += 1
            if bar is not None:
                bar.update()
            elif progress and time.perf_counter() - start > 1.:
                bar = ProgressBar(total)
                bar.update(done)
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(dict(classes=CLASSES, palette=PALETTE, seed=seed,
                       img_size=img_size, num_train=num_train,
                       num_val=num_val), f, indent=2)
    if bar is not None:
        print()  # ProgressBar leaves the cursor at the end of its line
    return root
