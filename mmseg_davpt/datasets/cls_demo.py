"""Small generated classification folders in the VTAB-1k or FGVC format.

Each class has its own colour (evenly spaced hues) and shape (disc, square,
triangle, ring, cross, cycled), drawn on a noisy background with jittered
colour, size and position, so a tiny ViT learns it in a few epochs while
the task is not a constant-colour lookup. Used by the tests and the CPU
classification demo.

Layouts written (the real benchmarks' split formats)::

    vtab:  root/images/{train800,val200,test}/000000.jpg
           root/{train800,val200,train800val200,test}.txt
                 lines "images/train800/000000.jpg 3"
    fgvc:  root/images/{cid:03d}.class_{cid}/{split}_{i:05d}.jpg
           root/{train,val,test}.json   {"003.class_3/train_00000.jpg": 3}
"""
import colorsys
import json
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
from PIL import Image

DEFAULT_PER_SPLIT = dict(
    vtab=dict(train800=80, val200=20, test=40),
    fgvc=dict(train=72, val=8, test=40),
)
NUM_SHAPES = 5


def _class_colour(cls: int, num_classes: int) -> np.ndarray:
    """A saturated colour per class, hues spread evenly over the circle."""
    rgb = colorsys.hsv_to_rgb(cls / num_classes, 0.85, 0.9)
    return np.array(rgb, np.float32) * 255


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one shape of ``kind`` (0..NUM_SHAPES-1)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    r = rng.uniform(0.25, 0.38) * size
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = yy - cy, xx - cx
    if kind == 0:  # disc
        return dy**2 + dx**2 <= r**2
    if kind == 1:  # square
        return (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8)
    if kind == 2:  # upward triangle
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    if kind == 3:  # ring
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (0.55 * r)**2)
    return ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)) | \
        ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))  # cross


def _sample(cls: int, num_classes: int, size: int,
            rng: np.random.Generator) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of class ``cls``."""
    img = rng.uniform(70, 150, 3) + rng.normal(0, 15, (size, size, 3))
    mask = _shape_mask(cls % NUM_SHAPES, size, rng)
    colour = _class_colour(cls, num_classes) + rng.normal(0, 12, 3)
    img[mask] = colour + rng.normal(0, 10, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _labels(count: int, num_classes: int,
            rng: np.random.Generator) -> np.ndarray:
    """Balanced labels (class counts differ by at most one), shuffled."""
    return rng.permutation(np.arange(count) % num_classes)


def _write_images(root: str, items, num_classes: int, size: int,
                  rng: np.random.Generator):
    for rel, cls in items:
        path = osp.join(root, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        # quality 95: small JPEG artefacts, colours stay clearly apart.
        Image.fromarray(_sample(cls, num_classes, size, rng)).save(
            path, quality=95)


def split_file_names(layout: str):
    """The split list files ``generate_cls_folders`` writes for ``layout``."""
    if layout == 'vtab':
        return [f'{s}.txt' for s in ('train800', 'val200', 'train800val200',
                                     'test')]
    return [f'{s}.json' for s in DEFAULT_PER_SPLIT.get(layout, ())]


def generate_cls_folders(root: str, layout: str = 'vtab',
                         num_classes: int = 4,
                         per_split: Optional[Dict[str, int]] = None,
                         img_size: int = 32, seed: int = 0,
                         ext: str = '.jpg') -> str:
    """Write a generated classification dataset under ``root``.

    Args:
        root: Output folder (created; existing files are overwritten).
        layout: ``'vtab'`` (train800/val200/train800val200/test ``.txt``)
            or ``'fgvc'`` (train/val/test ``.json`` under ``images/``).
        num_classes: Number of classes.
        per_split: Images per split: keys ``train800``, ``val200``,
            ``test`` for vtab (``train800val200`` is their union) or
            ``train``, ``val``, ``test`` for fgvc. Missing keys take the
            defaults in ``DEFAULT_PER_SPLIT``.
        img_size: Square image size in pixels.
        seed: Random seed; the output is identical for equal arguments.
        ext: ``'.jpg'`` or ``'.png'``.

    Returns:
        ``root``.
    """
    if layout not in DEFAULT_PER_SPLIT:
        raise ValueError(f"layout must be 'vtab' or 'fgvc', got {layout!r}")
    counts = dict(DEFAULT_PER_SPLIT[layout])
    unknown = set(per_split or {}) - set(counts)
    if unknown:
        raise ValueError(f'unknown splits {sorted(unknown)} for layout '
                         f'{layout!r}; expected {sorted(counts)}')
    counts.update(per_split or {})
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    splits = {}
    for split, count in counts.items():
        labels = _labels(count, num_classes, rng)
        if layout == 'vtab':
            items = [(f'images/{split}/{i:06d}{ext}', int(c))
                     for i, c in enumerate(labels)]
        else:
            items = [(f'{c:03d}.class_{c}/{split}_{i:05d}{ext}', int(c))
                     for i, c in enumerate(labels)]
        image_root = root if layout == 'vtab' else osp.join(root, 'images')
        _write_images(image_root, items, num_classes, img_size, rng)
        splits[split] = items
    if layout == 'vtab':
        splits['train800val200'] = splits['train800'] + splits['val200']
        for split, items in splits.items():
            with open(osp.join(root, f'{split}.txt'), 'w') as f:
                f.writelines(f'{rel} {c}\n' for rel, c in items)
    else:
        for split, items in splits.items():
            with open(osp.join(root, f'{split}.json'), 'w') as f:
                json.dump(dict(items), f, indent=1)
    return root
