"""AtomicCheckpointHook: an interrupted or failing checkpoint save with
max_keep_ckpts=1 keeps the previous checkpoint and a valid last_checkpoint,
and --resume continues from it (tools/train.py in subprocesses, demo VPT
config, generated data)."""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

from tests._helpers import ROOT, VPT, data_options

SETTINGS = ['train_cfg.max_iters=6', 'train_cfg.val_interval=100',
            'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=1',
            'default_hooks.logger.interval=2']
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def command(config, work_dir, data, *extra):
    return [sys.executable, 'tools/train.py', str(config), '--work-dir',
            str(work_dir), *extra, '--cfg-options', *data_options(*data),
            *SETTINGS]


def faulty_config(tmp_path, hook: str) -> str:
    path = tmp_path / 'faulty.py'
    path.write_text(
        f'_base_ = [{VPT!r}]\n'
        "custom_imports = dict(imports=['mmseg_davpt', "
        "'tests._checkpoint_faults'], allow_failed_imports=False)\n"
        f'custom_hooks = [{hook}]\n')
    return str(path)


def last_checkpoint(work_dir) -> str:
    with open(work_dir / 'last_checkpoint') as f:
        return f.read().strip()


def assert_iter_2_intact(work_dir):
    """The checkpoint before the interrupted save is whole and named by
    last_checkpoint; nothing else under a checkpoint name."""
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_2.pth')
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 2
    assert not osp.exists(work_dir / 'iter_4.pth')


@pytest.mark.slow
def test_killed_save_keeps_previous_checkpoint_and_resume_works(
        demo_data, tmp_path):
    work_dir = tmp_path / 'run'
    marker = tmp_path / 'saving'
    config = faulty_config(tmp_path, "dict(type='BlockSaveHook', at_iter=4, "
                           f'marker={str(marker)!r})')
    proc = subprocess.Popen(command(config, work_dir, demo_data), cwd=ROOT,
                            env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None:
        assert time.monotonic() < deadline, 'the run never reached the save'
        time.sleep(0.2)
    proc.kill()  # SIGKILL inside the save of iter_4
    err = proc.communicate()[1]
    assert marker.exists(), err[-3000:]
    assert_iter_2_intact(work_dir)
    # an unfinished write left by an interrupted save
    stray = work_dir / '.iter_4.pth.davpt-tmp-12345'
    stray.write_bytes(b'PK\x03\x04 half a checkpoint')

    proc = subprocess.run(command(VPT, work_dir, demo_data, '--resume'),
                          cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log
    assert not stray.exists() and 'unfinished write' in log
    assert torch.load(work_dir / 'iter_6.pth',
                      weights_only=False)['meta']['iter'] == 6
    assert sorted(p for p in os.listdir(work_dir) if p.endswith('.pth')) == [
        'iter_6.pth']  # max_keep_ckpts=1 still applies
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_6.pth')


@pytest.mark.slow
def test_failing_write_keeps_previous_checkpoint(demo_data, tmp_path):
    work_dir = tmp_path / 'run'
    config = faulty_config(tmp_path,
                           "dict(type='DiskFullAtSaveHook', at_iter=4)")
    proc = subprocess.run(command(config, work_dir, demo_data), cwd=ROOT,
                          env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert 'No space left on device (simulated)' in proc.stderr
    assert_iter_2_intact(work_dir)
    # the half-written file was removed
    assert [p for p in os.listdir(work_dir) if 'tmp' in p] == []


class StubRunner:
    """What CheckpointHook uses of a Runner; ``save_checkpoint`` writes the
    message hub through the hook's file backend, or fails when ``fail``."""

    def __init__(self, work_dir):
        from mmengine.logging import MessageHub, MMLogger
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'stub-{work_dir}')
        self.logger = MMLogger.get_instance(f'stub-{work_dir}')
        self.iter, self.epoch, self.fail = 0, 0, False

    def save_checkpoint(self, out_dir, filename, file_client_args=None,
                        backend_args=None, **kwargs):
        import io

        from mmengine.fileio import get_file_backend
        if self.fail:
            raise OSError('simulated write failure')
        buffer = io.BytesIO()
        torch.save(dict(message_hub=dict(self.message_hub.runtime_info)),
                   buffer)
        path = osp.join(out_dir, filename)
        get_file_backend(path, backend_args=backend_args).put(
            buffer.getvalue(), path)


def test_failed_best_checkpoint_save_keeps_the_previous_best(tmp_path):
    from mmseg_davpt.engine import AtomicCheckpointHook
    runner = StubRunner(tmp_path)
    hook = AtomicCheckpointHook(interval=2, by_epoch=False, max_keep_ckpts=1,
                                save_best='acc', rule='greater')
    hook.before_train(runner)

    def step(it, acc, fail_best=False):
        """The runner's order: iteration ``it`` saved, then validated."""
        runner.iter = it - 1
        hook._save_checkpoint(runner)  # iter_<it>.pth
        runner.iter, runner.fail = it, fail_best
        try:
            hook._save_best_checkpoint(runner, dict(acc=acc))
        finally:
            runner.fail = False

    step(2, 0.5)
    assert osp.isfile(tmp_path / 'best_acc_iter_2.pth')
    try:
        step(4, 0.9, fail_best=True)
    except OSError:
        pass
    else:
        raise AssertionError('the simulated failure did not happen')
    assert osp.isfile(tmp_path / 'best_acc_iter_2.pth')
    assert runner.message_hub.get_info('best_score') == 0.5
    step(6, 0.7)  # better than the best on disk
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == [
        'best_acc_iter_6.pth', 'iter_6.pth']
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_6.pth')
    saved = torch.load(tmp_path / 'iter_6.pth', weights_only=False)
    assert saved['message_hub']['best_ckpt'] == str(
        tmp_path / 'best_acc_iter_6.pth')
    assert saved['message_hub']['keep_ckpt_ids'] == [6]
