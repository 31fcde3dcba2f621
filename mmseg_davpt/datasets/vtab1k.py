"""VTAB-1k classification tasks in the common file-list layout.

The layout used by NOAH, DA-VPT and most later repositories::

    {data_root}/train800.txt          800 training images
    {data_root}/val200.txt            200 validation images
    {data_root}/train800val200.txt    both (train on this for the final run)
    {data_root}/test.txt              the task's full test set
    {data_root}/images/...            the images themselves

Each split file has one ``relative/path.jpg <int label>`` line per image,
paths relative to ``data_root`` (e.g. ``images/train800/000000.jpg 307``).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .split_checks import warn_repeated_entries

# Folder names of the 19 tasks in the common VTAB-1k release and their class
# counts (the same numbers NOAH's and DA-VPT's loaders hard-code).
VTAB_TASKS = dict(
    cifar=100,  # CIFAR-100
    caltech101=102,  # 101 categories + background (TFDS keeps it)
    dtd=47,
    oxford_flowers102=102,
    oxford_iiit_pet=37,
    svhn=10,
    sun397=397,
    patch_camelyon=2,
    eurosat=10,
    resisc45=45,
    diabetic_retinopathy=5,
    clevr_count=8,  # object counts 3..10
    clevr_dist=6,  # binned distance of the closest object
    dmlab=6,
    kitti=4,  # binned distance of the closest vehicle
    dsprites_loc=16,  # x position in 16 bins
    dsprites_ori=16,  # orientation in 16 bins
    smallnorb_azi=18,
    smallnorb_ele=9,
)

VTAB_SPLITS = ('train800', 'val200', 'train800val200', 'test')


def folder_contents(folder: str, limit: int = 20) -> str:
    """A short human-readable listing of ``folder`` for error messages."""
    if not osp.isdir(folder):
        return f'the folder {folder!r} does not exist'
    names = sorted(os.listdir(folder))
    if not names:
        return f'the folder {folder!r} is empty'
    shown = ', '.join(names[:limit])
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return f'{folder!r} has: {shown}{more}'


def resolve_num_classes(task: Optional[str], num_classes: Optional[int],
                        table: dict, kind: str) -> int:
    """``num_classes`` from the argument or the known-task ``table``; a
    clash between the two is an error (a mistyped task or count)."""
    known = table.get(task) if task is not None else None
    if isinstance(known, dict):
        known = known['num_classes']
    if num_classes is None:
        if known is None:
            hint = (f'unknown {kind} task {task!r}; ' if task is not None
                    else '')
            raise ValueError(
                f'{hint}pass num_classes, or task= one of {sorted(table)}')
        return known
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, '
                         f'got {num_classes!r}')
    if known is not None and known != num_classes:
        raise ValueError(f'{kind} task {task!r} has {known} classes but '
                         f'num_classes={num_classes} was given')
    return num_classes


def class_names(num_classes: int,
                classes: Union[str, Sequence[str], None]) -> Optional[tuple]:
    """Default class names are the label numbers as strings; given names
    must match ``num_classes`` (a file path is left to mmpretrain)."""
    if classes is None:
        return tuple(str(i) for i in range(num_classes))
    if not isinstance(classes, str) and len(classes) != num_classes:
        raise ValueError(f'{len(classes)} class names given for '
                         f'{num_classes} classes')
    return None  # mmpretrain's ``classes`` argument handles it


@DATASETS.register_module()
class VTAB1k(BaseDataset):
    """One VTAB-1k task folder (file-list layout, see the module docstring).

    Args:
        data_root (str): The task folder, e.g. ``data/vtab-1k/cifar``.
        split (str): One of ``'train800'``, ``'val200'``,
            ``'train800val200'``, ``'test'``; reads ``{split}.txt``.
        num_classes (int, optional): Number of classes; may be left out
            when ``task`` is a name in ``VTAB_TASKS``.
        task (str, optional): Task name; gives ``num_classes`` for the 19
            standard tasks and is stored in ``metainfo['task']``.
        classes (str | Sequence[str], optional): Class names (or a file
            of them); default: the label numbers as strings.
        pipeline (Sequence): mmpretrain transforms.
        test_mode (bool): mmengine's test mode.
        **kwargs: Other :class:`mmpretrain.datasets.BaseDataset` arguments
            (``metainfo``, ``indices``, ``serialize_data``, ``lazy_init``).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train800',
                 num_classes: Optional[int] = None,
                 task: Optional[str] = None,
                 classes: Union[str, Sequence[str], None] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in VTAB_SPLITS:
            raise ValueError(f'split must be one of {VTAB_SPLITS}, '
                             f'got {split!r}')
        self.split = split
        self.task = task
        self.num_classes = resolve_num_classes(task, num_classes, VTAB_TASKS,
                                               'VTAB-1k')
        meta = {}
        names = class_names(self.num_classes, classes)
        if names is not None:
            meta['classes'] = names
        meta.update(metainfo or {})
        super().__init__(
            ann_file=f'{split}.txt',
            data_root=data_root,
            data_prefix='',
            classes=classes,
            metainfo=meta,
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)
        # Set after init: mmengine would try to open a str metainfo value
        # as a meta file (and warn, or load a file that happens to match).
        self._metainfo.setdefault('task', task)

    def load_data_list(self) -> List[dict]:
        """Parse ``{split}.txt`` into ``dict(img_path=..., gt_label=...)``."""
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'VTAB-1k split file {path!r} not found; '
                f'{folder_contents(osp.dirname(path) or ".")}')
        data_list = []
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue  # blank / trailing lines are harmless
                data_list.append(self._parse_line(path, lineno, line))
        if not data_list:
            raise ValueError(f'VTAB-1k split file {path!r} has no samples')
        warn_repeated_entries(path, (d['img_path'] for d in data_list))
        return data_list

    def _parse_line(self, path: str, lineno: int, line: str) -> dict:
        # Split from the right so image paths may contain spaces.
        parts = line.rsplit(maxsplit=1)
        where = f'{path}, line {lineno}'
        if len(parts) != 2:
            raise ValueError(f'{where}: expected "relative/path.jpg <label>",'
                             f' got {line!r}')
        rel, label = parts
        try:
            label = int(label)
        except ValueError:
            raise ValueError(f'{where}: label {label!r} is not an integer')
        if not 0 <= label < self.num_classes:
            raise ValueError(f'{where}: label {label} is outside '
                             f'[0, {self.num_classes})')
        return dict(img_path=osp.join(self.img_prefix, rel), gt_label=label)

    def extra_repr(self) -> List[str]:
        return [f'Task: \t{self.task}', f'Split: \t{self.split}',
                *super().extra_repr()]
