"""Class-statistics cache files of the initial mapping pass: saving, loading
and checking the target before a long pass."""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch


def ensure_writable(path: str) -> None:
    """Create the folder of ``path`` and check it can be written, so a bad
    ``cache_file`` fails before the initial pass rather than after it."""
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise ValueError(f'cache_file {path!r} is a folder; give a file name '
                         'such as class_stats.pth')
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OSError(f'cannot create the folder {folder!r} of cache_file '
                      f'{path!r}: {err}') from err
    if not os.access(folder, os.W_OK):
        raise PermissionError(f'cache_file {path!r}: folder {folder!r} is '
                              'not writable')


def save(path: str, feat_sum: torch.Tensor, feat_count: torch.Tensor,
         classes: Optional[Sequence[str]], embed_dims: int) -> None:
    """Write global sums ``(C, D)`` and counts ``(C,)`` with what they were
    made for (class names, feature width), atomically (temp file, rename)."""
    ensure_writable(path)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(dict(feat_sum=feat_sum.cpu(), feat_count=feat_count.cpu(),
                    classes=list(classes) if classes else None,
                    embed_dims=embed_dims), tmp)
    os.replace(tmp, path)


def load(path: str, classes: Optional[Sequence[str]],
         embed_dims: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(feat_sum, feat_count)`` from ``path``, or a ``ValueError`` naming
    the field that differs from this run (``classes`` or ``embed_dims``)."""
    cache = torch.load(path, map_location='cpu')
    expected = dict(classes=list(classes) if classes else None,
                    embed_dims=embed_dims)
    for key, value in expected.items():
        if cache.get(key) != value:
            raise ValueError(
                f'class-statistics cache {path} was made for another '
                f'setting: {key}={cache.get(key)!r}, this run has {value!r}. '
                'Delete it or point cache_file elsewhere.')
    return cache['feat_sum'], cache['feat_count']
