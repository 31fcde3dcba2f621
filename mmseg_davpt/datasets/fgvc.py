"""FGVC classification datasets in the VPT benchmark's split format.

::

    {data_root}/train.json     {relative_image_path: class_id}
    {data_root}/val.json
    {data_root}/test.json
    {data_root}/{image_prefix}/...   the images the json paths point to

``image_prefix`` is ``images`` for CUB-200-2011 and NABirds, ``Images`` for
Stanford Dogs and empty (the root itself) for Stanford Cars and Oxford
Flowers. ``tools/dataset_prep/make_fgvc_splits.py`` writes these files.
"""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .split_checks import warn_repeated_entries
from .vtab1k import folder_contents, resolve_num_classes

FGVC_TASKS = dict(
    cub=dict(num_classes=200, image_prefix='images'),
    nabirds=dict(num_classes=555, image_prefix='images'),
    oxford_flowers=dict(num_classes=102, image_prefix=''),
    stanford_dogs=dict(num_classes=120, image_prefix='Images'),
    stanford_cars=dict(num_classes=196, image_prefix=''),
)

FGVC_SPLITS = ('train', 'val', 'test')


class _PairList(list):
    """A JSON object as its ``(key, value)`` pairs, repeats kept."""


def read_split_json(path: str) -> Dict[str, int]:
    """``{relative_image_path: class_id}`` from one split file, with errors
    that name the file (and the JSON position or the offending key)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'FGVC split file {path!r} not found; '
            f'{folder_contents(osp.dirname(path) or ".")}')
    with open(path, encoding='utf-8') as f:
        try:
            # keep repeated keys visible: a plain dict keeps the last one
            # silently
            raw = json.load(f, object_pairs_hook=_PairList)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: invalid JSON at line {e.lineno}, '
                             f'column {e.colno}: {e.msg}') from None
    if isinstance(raw, _PairList):
        warn_repeated_entries(path, (k for k, _ in raw), 'keys')
        raw = dict(raw)  # JSON's rule: the last value of a key counts
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: expected a JSON object '
                         f'{{"relative/image.jpg": class_id}}, '
                         f'got a {type(raw).__name__}')
    if not raw:
        raise ValueError(f'FGVC split file {path!r} has no samples')
    split = {}
    for key, cid in raw.items():
        # bool is an int subclass, and "3.0"/3.5 would be a silent cast.
        if isinstance(cid, str) and cid.strip().lstrip('-').isdigit():
            cid = int(cid)
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise ValueError(f'{path}: class id {cid!r} of key {key!r} '
                             f'is not an integer')
        split[key] = cid
    return split


@DATASETS.register_module()
class FGVC(BaseDataset):
    """One FGVC dataset (CUB, NABirds, Oxford Flowers, Stanford Dogs/Cars)
    in the VPT split format (see the module docstring).

    Class ids are remapped to contiguous indices ``0..K-1`` by sorting the
    union of the ids found in *all* split files present in ``data_root``,
    so train, val and test agree even when a split misses a class. (VPT
    remaps each split on its own, which silently shifts labels when a split
    lacks a class; with complete splits both give the same indices.)

    Args:
        data_root (str): The dataset folder holding the json files.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        image_prefix (str, optional): Folder the json paths are relative
            to, relative to ``data_root``; default from ``task``, else ''.
        num_classes (int, optional): Number of classes; default from
            ``task``, else the number of distinct ids found.
        task (str, optional): One of ``FGVC_TASKS`` (``'cub'``,
            ``'nabirds'``, ``'oxford_flowers'``, ``'stanford_dogs'``,
            ``'stanford_cars'``) or any name (then stored in metainfo only).
        classes (str | Sequence[str], optional): Class names in index
            order; default: the original class ids as strings.
        pipeline (Sequence): mmpretrain transforms.
        test_mode (bool): mmengine's test mode.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 image_prefix: Optional[str] = None,
                 num_classes: Optional[int] = None,
                 task: Optional[str] = None,
                 classes: Union[str, Sequence[str], None] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in FGVC_SPLITS:
            raise ValueError(f'split must be one of {FGVC_SPLITS}, '
                             f'got {split!r}')
        known = FGVC_TASKS.get(task, {})
        if image_prefix is None:
            image_prefix = known.get('image_prefix', '')
        self.split = split
        self.task = task
        self.image_prefix = image_prefix
        # The id mapping needs every split file, so it is built now (the
        # files are small) and the metainfo can carry the class names.
        self.id_to_index = self._build_id_map(data_root, split)
        found = len(self.id_to_index)
        if num_classes is None and task not in FGVC_TASKS:
            num_classes = found
        self.num_classes = resolve_num_classes(task, num_classes, FGVC_TASKS,
                                               'FGVC')
        if found > self.num_classes:
            raise ValueError(
                f'{found} distinct class ids in {self._id_files} but '
                f'num_classes={self.num_classes}')
        if found < self.num_classes:
            warnings.warn(f'only {found} of {self.num_classes} classes occur '
                          f'in {self._id_files}')
        meta = {}
        if classes is None:
            ids = sorted(self.id_to_index, key=self.id_to_index.get)
            meta['classes'] = tuple(str(i) for i in ids) + tuple(
                f'unseen_{i}' for i in range(found, self.num_classes))
        elif not isinstance(classes, str) and \
                len(classes) != self.num_classes:
            raise ValueError(f'{len(classes)} class names given for '
                             f'{self.num_classes} classes')
        meta.update(metainfo or {})
        super().__init__(
            ann_file=f'{split}.json',
            data_root=data_root,
            data_prefix=image_prefix,
            classes=classes,
            metainfo=meta,
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)
        # Set after init: mmengine would try to open a str metainfo value
        # as a meta file (and warn, or load a file that happens to match).
        self._metainfo.setdefault('task', task)

    def _build_id_map(self, data_root: str, split: str) -> Dict[int, int]:
        # The requested split must exist; the others join the union only
        # when present (e.g. a folder with just test.json for evaluation).
        files = [osp.join(data_root, f'{s}.json') for s in FGVC_SPLITS
                 if s == split or osp.isfile(osp.join(data_root, f'{s}.json'))]
        ids = set()
        for path in files:
            ids.update(read_split_json(path).values())
        self._id_files = files
        return {cid: i for i, cid in enumerate(sorted(ids))}

    def load_data_list(self) -> List[dict]:
        """Parse ``{split}.json`` into ``dict(img_path=..., gt_label=...)``
        with contiguous labels."""
        split = read_split_json(self.ann_file)
        data_list = [dict(img_path=osp.join(self.img_prefix, rel),
                          gt_label=self.id_to_index[cid])
                     for rel, cid in split.items()]
        # A wrong image_prefix is the usual mistake; one stat catches it
        # here instead of deep inside the first training iteration.
        first = data_list[0]['img_path']
        if '://' not in first and not osp.isfile(first):
            raise FileNotFoundError(
                f'{self.ann_file}: image {first!r} not found; is '
                f'image_prefix={self.image_prefix!r} right? '
                f'{folder_contents(self.data_root or ".")}')
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Task: \t{self.task}', f'Split: \t{self.split}',
                *super().extra_repr()]
