"""One live training run per work dir.

Two runs started in the same work dir overwrite each other's checkpoints
and ``last_checkpoint``, interleave ``davpt_mapping_history.jsonl``, and both
exit 0. ``tools/train.py`` therefore holds an exclusive ``fcntl.flock`` on
``work_dir/.davpt_train.lock`` for the run's lifetime. The kernel releases
it when the process ends, however it ends (SIGKILL, OOM), so a crashed run
never leaves the work dir locked; the file itself only carries the holder's
pid, host and start time for the error message.
"""
import atexit
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time
from typing import Dict, Optional

LOCK_NAME = '.davpt_train.lock'

# locks held by this process, by lock-file path: kept referenced so their
# file descriptors (and the locks) live until exit or ``release``
_HELD: Dict[str, 'WorkDirLock'] = {}


class WorkDirBusyError(RuntimeError):
    """Another live process holds the work dir's lock."""


def _launch_rank() -> int:
    """This process's global rank from the launcher's environment (0 when
    not distributed), known before the process group exists."""
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(var, '').isdigit():
            return int(os.environ[var])
    return 0


class WorkDirLock:
    """Exclusive, non-blocking lock on ``work_dir/.davpt_train.lock``.

    Args:
        work_dir (str): the run's work dir (created if missing).
    """

    def __init__(self, work_dir: str):
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock or raise ``WorkDirBusyError`` naming its holder.
        Re-entrant within one process."""
        held = _HELD.get(self.path)
        if held is not None:
            return held
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise WorkDirBusyError(self._busy_message(holder)) from None
        except OSError as err:  # e.g. a file system without flock
            os.close(fd)
            print(f'Warning: cannot lock {self.path} ({err}); not guarding '
                  'the work dir against a second run', file=sys.stderr)
            return self
        self._fd = fd
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    started=time.strftime('%Y-%m-%d %H:%M:%S'),
                    command=' '.join(sys.argv))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD[self.path] = self
        return self

    def release(self) -> None:
        """Give the lock back (also done by the kernel at process exit)."""
        if self._fd is None:
            return
        _HELD.pop(self.path, None)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @staticmethod
    def _read_holder(fd: int) -> dict:
        try:
            return json.loads(os.pread(fd, 4096, 0).decode() or '{}')
        except (OSError, ValueError):
            return {}  # the holder has not written its details yet

    def _busy_message(self, holder: dict) -> str:
        pid, host = holder.get('pid', '?'), holder.get('host', '?')
        return (
            f'work dir {self.work_dir} is in use by another training run: '
            f'pid {pid} on host {host}, started {holder.get("started", "?")}'
            f' ({holder.get("command", "command unknown")}). Two runs in '
            f'one work dir overwrite each other\'s checkpoints and logs. '
            f'Wait for it to finish, stop it (kill {pid} on {host}), or pass '
            f'another --work-dir. (lock file: {self.path}, held with '
            f'flock; a crashed run releases it)')


def lock_work_dir(work_dir: str) -> Optional[WorkDirLock]:
    """For training tools: on rank 0 of the run, hold ``work_dir``'s lock
    until the process exits; exit with the holder's details when another
    live run holds it. Other ranks share rank 0's run and return ``None``.
    """
    if _launch_rank() != 0:
        return None
    try:
        lock = WorkDirLock(work_dir).acquire()
    except WorkDirBusyError as err:
        raise SystemExit(f'Error: {err}') from None
    atexit.register(lock.release)
    return lock
