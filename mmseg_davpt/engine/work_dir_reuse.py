"""A new training run must not write over another run's checkpoints.

mmengine names checkpoints by iteration or epoch only, so a new run in a
work dir that holds an earlier run's ``iter_*.pth`` replaces them one by one
(and ``last_checkpoint`` then points at a mix). ``tools/train.py`` therefore
checks the work dir of every run that does not resume, and starts over only
when told to (``--overwrite-work-dir``), removing the earlier run's
checkpoints first so the two runs never mix.
"""
import glob
import os
import os.path as osp
from typing import List

#: what an earlier run leaves that a new run would write over or mix with
PREVIOUS_RUN_PATTERNS = ('iter_*.pth', 'epoch_*.pth', 'best_*.pth',
                         'last_checkpoint', 'davpt_mapping_history.jsonl',
                         'davpt_report.json')


def previous_run_files(work_dir: str) -> List[str]:
    """Files of an earlier run in ``work_dir`` (sorted paths)."""
    found = set()
    for pattern in PREVIOUS_RUN_PATTERNS:
        found.update(glob.glob(osp.join(glob.escape(work_dir), pattern)))
    return sorted(found)


def _summary(paths: List[str], limit: int = 6) -> str:
    names = [osp.basename(p) for p in paths]
    return ', '.join(names[:limit]) + (
        f' and {len(names) - limit} more' if len(names) > limit else '')


def check_new_run_work_dir(work_dir: str, resume: bool, overwrite: bool,
                           remove: bool = True) -> List[str]:
    """Stop a new (non-resumed) run in a work dir holding an earlier run's
    checkpoints, saying what is there and how to proceed; with
    ``overwrite``, remove them (when ``remove``: rank 0 only) and return
    what was removed.

    Raises:
        SystemExit: the work dir holds an earlier run and ``overwrite`` is
            not set.
    """
    if resume or not osp.isdir(work_dir):
        return []
    found = previous_run_files(work_dir)
    if not found:
        return []
    if not overwrite:
        raise SystemExit(
            f'Error: work dir {work_dir} holds another run: {len(found)} '
            f'files ({_summary(found)}). A new run would overwrite its '
            'checkpoints. Continue it with --resume, give this run another '
            '--work-dir, or pass --overwrite-work-dir to delete them and '
            'start over.')
    if remove:
        for path in found:
            os.remove(path)
        print(f'--overwrite-work-dir: removed {len(found)} files of the '
              f'earlier run in {work_dir} ({_summary(found)})')
    return found
