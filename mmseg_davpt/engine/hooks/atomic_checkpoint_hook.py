"""Checkpoint saving that an interruption cannot turn into "no checkpoint".

mmengine's ``CheckpointHook`` deletes the outdated checkpoint *before*
writing the new one, writes the new one in place, and rewrites
``last_checkpoint`` in place. A run killed during a save (OOM killer, job
time limit, Ctrl-C, full disk) with ``max_keep_ckpts=1`` is left with a
partial or no checkpoint, and ``last_checkpoint`` naming a missing file, so
``--resume`` fails. Here every file is written to a temporary name in the
same folder and renamed over the target (atomic on POSIX), and outdated
checkpoints are removed only once the new one is complete.
"""
import glob
import os
import os.path as osp
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ...utils.registry import also_in_mmpretrain

# temporary files are ``.<name><TMP_MARK><pid>`` beside their target
TMP_MARK = '.davpt-tmp-'
ATOMIC_BACKEND = 'davpt_atomic_local'
# message-hub entries a save updates (restored when it fails)
_HUB_KEYS = ('keep_ckpt_ids', 'last_ckpt')


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so that ``path`` always holds either its
    previous content or all of ``data``: write a temporary file in the same
    folder, fsync it, ``os.replace`` it over ``path``. On any error the
    temporary file is removed and the error re-raised."""
    path = osp.abspath(path)
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}{TMP_MARK}{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``
    (what ``mmengine.runner.save_checkpoint`` writes checkpoints with)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _DeferredRemovals:
    """A file backend whose ``remove`` / ``rmtree`` only record the path;
    everything else goes to the wrapped backend."""

    def __init__(self, backend):
        self._backend = backend
        self.paths: List[str] = []

    def remove(self, path) -> None:
        self.paths.append(str(path))

    def rmtree(self, path) -> None:
        self.paths.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@also_in_mmpretrain('HOOKS')
@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments, files, message-hub entries and
    resume behaviour) whose saves survive being interrupted at any point.

    * Checkpoints and ``last_checkpoint`` are written to a temporary file in
      the same folder and renamed into place, so a file under a checkpoint's
      name is always complete and ``last_checkpoint`` always names one.
    * With ``max_keep_ckpts``, the outdated checkpoint is removed after the
      new one is complete; the previous best checkpoint (``save_best``) is
      removed after the new best is.
    * Temporary files of an interrupted save are removed when training
      starts (``before_train``, i.e. after ``--resume`` has loaded).

    A kill between the completed save and the removal leaves one extra
    outdated checkpoint behind, never less than one. Atomic writes need a
    local ``out_dir``; with a remote one (``backend_args`` or a URI prefix)
    the writes are the backend's, only the removal order is changed.
    """

    def __init__(self, *args, out_dir=None, backend_args=None,
                 file_client_args=None, **kwargs):
        local = out_dir is None or '://' not in str(out_dir)
        if backend_args is None and file_client_args is None and local:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        for folder in {str(self.out_dir), runner.work_dir}:
            for tmp in glob.glob(osp.join(folder, f'.*{TMP_MARK}*')):
                os.remove(tmp)
                runner.logger.warning(
                    f'Removed {tmp}: the unfinished write of an interrupted '
                    'checkpoint save')

    def _save_checkpoint_with_step(self, runner, step, meta):
        hub = runner.message_hub
        saved_state = (list(getattr(self, 'keep_ckpt_ids', [])),
                       self.last_ckpt,
                       {key: hub.runtime_info[key] for key in _HUB_KEYS
                        if key in hub.runtime_info})
        try:
            outdated = self._keep_step(runner, step)
            filename = self.filename_tmpl.format(step)
            self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                         filename)
            hub.update_info('last_ckpt', self.last_ckpt)
            # the message hub saved in the checkpoint holds the updated
            # keep_ckpt_ids and last_ckpt, as with mmengine's hook
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta,
                by_epoch=self.by_epoch, backend_args=self.backend_args,
                **self.args)
        except BaseException:
            self._restore(runner, *saved_state)
            raise
        if not is_main_process():
            return
        atomic_write_bytes(str(self.last_ckpt).encode(),
                           osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated is not None:
            self._remove_outdated([outdated])

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best before writing the new one:
        # record its removals and do them once the new files are complete
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        info = runner.message_hub.runtime_info
        saved_info = {k: v for k, v in info.items() if k.startswith('best_')}
        saved_paths = (getattr(self, 'best_ckpt_path', None),
                       dict(getattr(self, 'best_ckpt_path_dict', {})))
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        except BaseException:
            # the best score and path stay those of the file still there
            for key in [k for k in info if k.startswith('best_')]:
                del info[key]
            info.update(saved_info)
            if hasattr(self, 'best_ckpt_path'):
                self.best_ckpt_path = saved_paths[0]
            if hasattr(self, 'best_ckpt_path_dict'):
                self.best_ckpt_path_dict = saved_paths[1]
            raise
        finally:
            self.file_backend = backend
        self._remove_outdated(deferred.paths)

    def _keep_step(self, runner, step) -> Optional[str]:
        """Add ``step`` to ``keep_ckpt_ids`` (as mmengine does) and return
        the checkpoint that falls out of it, to remove after the save."""
        if self.max_keep_ckpts <= 0:
            return None
        if self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step:
            return None  # the same step saved again (new best checkpoint)
        outdated = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            outdated = self.file_backend.join_path(
                self.out_dir,
                self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return outdated

    def _restore(self, runner, keep_ids, last_ckpt, hub_values) -> None:
        """Undo ``_keep_step`` and the ``last_ckpt`` update after a failed
        save: the files on disk did not change either."""
        if hasattr(self, 'keep_ckpt_ids'):
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(keep_ids)
        self.last_ckpt = last_ckpt
        info = runner.message_hub.runtime_info
        for key in _HUB_KEYS:
            if key in hub_values:
                info[key] = hub_values[key]
            else:
                info.pop(key, None)

    def _remove_outdated(self, paths: List[str]) -> None:
        """Remove checkpoints (files, or DeepSpeed folders) except those
        still in use: the last and the best checkpoints."""
        if not is_main_process():
            return
        current = {str(self.last_ckpt), str(getattr(self, 'best_ckpt_path',
                                                    None))}
        current.update(str(p) for p in getattr(self, 'best_ckpt_path_dict',
                                               {}).values())
        for path in paths:
            if path in current:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
