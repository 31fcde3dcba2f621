"""Test-only hooks that interrupt a checkpoint save from inside it
(tests/test_engine/test_hooks/test_atomic_checkpoint.py). Both act in
``before_save_checkpoint``, which runs inside ``Runner.save_checkpoint``:
after mmengine's ``CheckpointHook`` has removed the outdated checkpoint,
before any byte of the new one is written."""
import errno
import time

from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class BlockSaveHook(Hook):
    """At the save after iteration ``at_iter``: create ``marker`` and block,
    so the test can SIGKILL the process in the middle of the save."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int, marker: str):
        self.at_iter, self.marker = at_iter, marker

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.at_iter:
            open(self.marker, 'w').close()
            time.sleep(600)


class _DiskFullFile:
    """A binary file that writes half of what it gets, then fails."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, 'No space left on device (simulated)')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _disk_full_open(file, mode='r', *args, **kwargs):
    f = open(file, mode, *args, **kwargs)
    return _DiskFullFile(f) if 'w' in mode and 'b' in mode else f


@HOOKS.register_module()
class DiskFullAtSaveHook(Hook):
    """From the save after iteration ``at_iter`` on, binary file writes of
    mmengine's local backend and of our atomic writer stop half-way with
    ``ENOSPC``, as on a full disk."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.at_iter:
            from mmengine.fileio.backends import local_backend
            local_backend.open = _disk_full_open
            try:
                from mmseg_davpt.engine.hooks import atomic_checkpoint_hook
            except ImportError:  # the stock hook only
                return
            atomic_checkpoint_hook.open = _disk_full_open
