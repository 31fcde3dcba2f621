"""Class-statistics cache files of the initial mapping pass: saving, loading
and checking the target before a long pass."""
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


class CacheMismatchError(ValueError):
    """A class-statistics cache made under other settings than this run's;
    ``differences`` lists them as ``(name, cached, this run)``."""

    def __init__(self, message: str, differences: List[Tuple[str, Any, Any]]):
        super().__init__(message)
        self.differences = differences


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f'{text[:40]}...({len(text)} chars)'


def describe(differences: List[Tuple[str, Any, Any]]) -> str:
    """``'name=<cached>, this run has <value>; ...'``."""
    return '; '.join(f'{name}={_short(old)}, this run has {_short(new)}'
                     for name, old, new in differences)


def is_statistics_cache(obj: Any) -> bool:
    """Whether a loaded file is a class-statistics cache (so rewriting it
    destroys nothing else)."""
    return isinstance(obj, dict) and {'feat_sum', 'feat_count'} <= set(obj)


def save(path: str, feat_sum: torch.Tensor, feat_count: torch.Tensor,
         classes: Optional[Sequence[str]], embed_dims: int,
         settings: Optional[Dict[str, Any]] = None) -> None:
    """Write global sums ``(C, D)`` and counts ``(C,)`` with what they were
    made for (class names, feature width and ``settings``: mapping layer,
    features compared, weights and data fingerprints...), atomically (temp
    file, rename)."""
    ensure_writable(path)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(dict(feat_sum=feat_sum.cpu(), feat_count=feat_count.cpu(),
                    classes=list(classes) if classes else None,
                    embed_dims=embed_dims, settings=dict(settings or {})),
               tmp)
    os.replace(tmp, path)


def load(path: str, classes: Optional[Sequence[str]], embed_dims: int,
         settings: Optional[Dict[str, Any]] = None
         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(feat_sum, feat_count)`` from ``path``.

    Raises:
        CacheMismatchError: naming every field that differs from this run
            (``classes``, ``embed_dims``, then each of ``settings``; a
            setting the cache does not record counts as different).
        CheckpointFileError: ``path`` is no readable PyTorch file, or not a
            statistics cache.
    """
    from ...utils.checkpoint_file import CheckpointFileError, read_checkpoint
    cache = read_checkpoint(path)
    if not is_statistics_cache(cache):
        raise CheckpointFileError(
            f'{path} is not a class-statistics cache (no feat_sum / '
            f'feat_count; keys: {sorted(cache)[:8]})')
    expected = dict(classes=list(classes) if classes else None,
                    embed_dims=embed_dims)
    differences = [(k, cache.get(k), v) for k, v in expected.items()
                   if cache.get(k) != v]
    cached = cache.get('settings') or {}
    differences += [(k, cached.get(k, 'not recorded'), v)
                    for k, v in (settings or {}).items()
                    if cached.get(k, 'not recorded') != v]
    if differences:
        raise CacheMismatchError(
            f'class-statistics cache {path} was made for another setting: '
            f'{describe(differences)}. Delete it or point cache_file '
            'elsewhere.', differences)
    return cache['feat_sum'], cache['feat_count']
