"""Checks of a segmentation folder (images + label maps) before training:
what ``BaseSegDataset`` would pair, skip or fail on, and what the label
maps hold. Used by ``tools/dataset_prep/check_seg_dataset.py``."""
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

# label map modes MMSegmentation reads as class ids (one channel)
ID_MODES = ('L', 'P', 'I;16', 'I', 'I;16B', 'I;16L')


@dataclass
class SplitReport:
    """What one split holds. ``errors`` make training fail or drop data
    silently; ``warnings`` do not."""
    name: str
    num_pairs: int = 0
    modes: Counter = field(default_factory=Counter)
    palette_indices: set = field(default_factory=set)
    pixels: Optional[np.ndarray] = None  # per-class pixel counts
    ignored_pixels: int = 0
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _files(folder: str) -> List[str]:
    """Paths relative to ``folder``, recursive (as mmseg's
    ``fileio.list_dir_or_file(recursive=True)``)."""
    out = []
    for root, _, names in os.walk(folder):
        for name in names:
            out.append(osp.relpath(osp.join(root, name), folder))
    return sorted(out)


def _names(paths: List[str], limit: int = 5) -> str:
    shown = ', '.join(paths[:limit])
    return shown + (f' ... ({len(paths)} in all)' if len(paths) > limit
                    else '')


def read_label(path: str) -> Tuple[np.ndarray, str, Optional[list]]:
    """``(array, PIL mode, palette indices used or None)`` of a label
    file, read without conversion (a palette image gives its indices)."""
    with Image.open(path) as img:
        mode = img.mode
        arr = np.asarray(img)
    return arr, mode, (sorted(np.unique(arr).tolist()) if mode == 'P'
                       else None)


def check_split(img_dir: str, ann_dir: str, name: str, img_suffix: str,
                seg_suffix: str, num_classes: Optional[int],
                ignore_index: int = 255,
                reduce_zero_label: bool = False) -> SplitReport:
    """Pair ``img_dir`` / ``ann_dir`` as ``BaseSegDataset`` does (image
    ``X{img_suffix}`` -> label ``X{seg_suffix}``) and check every pair."""
    report = SplitReport(name)
    imgs = _files(img_dir) if osp.isdir(img_dir) else []
    anns = _files(ann_dir) if osp.isdir(ann_dir) else []
    if not osp.isdir(img_dir):
        report.errors.append(f'no image folder {img_dir}')
        return report
    if not osp.isdir(ann_dir):
        report.errors.append(f'no label folder {ann_dir}')
        return report
    skipped_imgs = [f for f in imgs if not f.endswith(img_suffix)]
    skipped_anns = [f for f in anns if not f.endswith(seg_suffix)]
    if skipped_imgs:
        report.errors.append(
            f'{len(skipped_imgs)} files in {img_dir} do not end in '
            f'{img_suffix!r} and are skipped by the dataset (suffix '
            f'filter, case-sensitive): {_names(skipped_imgs)}')
    if skipped_anns:
        report.errors.append(
            f'{len(skipped_anns)} files in {ann_dir} do not end in '
            f'{seg_suffix!r} and are never read: {_names(skipped_anns)}')
    img_stems = {f[:-len(img_suffix)] for f in imgs if f.endswith(img_suffix)}
    ann_stems = {f[:-len(seg_suffix)] for f in anns if f.endswith(seg_suffix)}
    no_label = sorted(img_stems - ann_stems)
    no_image = sorted(ann_stems - img_stems)
    if no_label:
        report.errors.append(
            f'{len(no_label)} images without a label (training stops with '
            f'FileNotFoundError when it reaches one): '
            f'{_names([s + img_suffix for s in no_label])}')
    if no_image:
        report.errors.append(
            f'{len(no_image)} labels without an image (silently unused): '
            f'{_names([s + seg_suffix for s in no_image])}')
    pairs = sorted(img_stems & ann_stems)
    report.num_pairs = len(pairs)
    if not pairs:
        report.errors.append('no image/label pairs')
        return report
    size_mismatch, colour_maps, out_of_range = [], [], Counter()
    out_of_range_files = []
    counts = np.zeros(num_classes or 0, dtype=np.int64)
    for stem in pairs:
        img_path = osp.join(img_dir, stem + img_suffix)
        ann_path = osp.join(ann_dir, stem + seg_suffix)
        try:
            with Image.open(img_path) as img:
                img_size = img.size
            arr, mode, indices = read_label(ann_path)
        except OSError as e:
            report.errors.append(f'cannot read {stem}: {e}')
            continue
        report.modes[mode] += 1
        if indices is not None:
            report.palette_indices.update(indices)
        if (arr.shape[1], arr.shape[0]) != img_size:
            size_mismatch.append(f'{stem} (image {img_size[0]}x'
                                 f'{img_size[1]}, label {arr.shape[1]}x'
                                 f'{arr.shape[0]})')
        if mode not in ID_MODES or arr.ndim != 2:
            colours = np.unique(arr.reshape(-1, arr.shape[-1]), axis=0)
            colour_maps.append(f'{stem} ({mode}, {len(colours)} colours, '
                               f'e.g. {colours[:3].tolist()})')
            continue
        ids = arr.astype(np.int64)
        if reduce_zero_label:
            # as LoadAnnotations: 0 -> 255, v -> v - 1, 255 stays 255
            ids[ids == 0] = 256
            ids -= 1
            ids[ids == 254] = 255
        ignored = ids == ignore_index
        report.ignored_pixels += int(ignored.sum())
        values = ids[~ignored]
        if num_classes is None:
            continue
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            out_of_range.update(np.unique(values[bad]).tolist())
            out_of_range_files.append(stem)
        counts += np.bincount(values[~bad], minlength=num_classes)
    if size_mismatch:
        report.errors.append(
            f'{len(size_mismatch)} label maps differ in size from their '
            f'image: {_names(size_mismatch)}')
    if colour_maps:
        report.errors.append(
            f'{len(colour_maps)} label maps are colour images, not class '
            f'ids (convert each colour to its class id, e.g. with a palette '
            f'"P" PNG): {_names(colour_maps)}')
    if out_of_range:
        hint = (' (ids 1..N: set reduce_zero_label=True?)'
                if not reduce_zero_label and max(out_of_range) == num_classes
                and 0 not in out_of_range else '')
        report.errors.append(
            f'values outside [0, {num_classes}) that are not the ignore '
            f'index {ignore_index}: {sorted(out_of_range)} in '
            f'{len(out_of_range_files)} label maps: '
            f'{_names(out_of_range_files)}{hint}')
    if num_classes is not None:
        report.pixels = counts
    return report


def find_splits(root: str, img_dir: str, ann_dir: str) -> List[str]:
    """Sub-folders of ``root/img_dir`` holding no further split level
    (``img_dir/train``, ``img_dir/val``...), or ``['']`` for a flat
    folder of images."""
    base = osp.join(root, img_dir)
    if not osp.isdir(base):
        raise FileNotFoundError(f'no image folder {base}')
    subdirs = sorted(d for d in os.listdir(base)
                     if osp.isdir(osp.join(base, d)))
    return subdirs or ['']


def never_present(reports: List[SplitReport],
                  classes: List[str]) -> Dict[str, List[str]]:
    """Per split, the class names with no pixel in it."""
    return {r.name: [classes[i] for i, c in enumerate(r.pixels) if c == 0]
            for r in reports if r.pixels is not None}
