"""A second live run in the same work dir is refused (tools/train.py exits
naming the holder); once the holder is SIGKILLed, a new run proceeds: the
lock dies with its process. The holder is another process; the runs
call tools/train.py's ``main`` here."""
import os
import subprocess
import sys

import pytest

from tests._helpers import ROOT, VPT, data_options
from tools.train import main as train_main

HOLD = ('import sys, time\n'
        'from mmseg_davpt.engine.work_dir_lock import WorkDirLock\n'
        'WorkDirLock(sys.argv[1]).acquire()\n'
        'print("locked", flush=True)\n'
        'time.sleep(600)\n')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def train(work_dir, data):
    train_main([VPT, '--work-dir', str(work_dir), '--cfg-options',
                *data_options(*data), 'train_cfg.max_iters=2',
                'train_cfg.val_interval=100',
                'default_hooks.checkpoint.interval=2'])


@pytest.mark.slow
def test_second_run_in_a_work_dir_is_refused_until_the_holder_dies(
        demo_data, tmp_path):
    work_dir = tmp_path / 'run'
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(work_dir)],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                              text=True)
    try:
        for line in holder.stdout:  # (imports may print first)
            if line.strip() == 'locked':
                break
        else:
            raise AssertionError('the holder did not take the lock')
        with pytest.raises(SystemExit) as exit_:
            train(work_dir, demo_data)
        err = str(exit_.value)
        assert f'work dir {work_dir} is in use by another training run' in err
        assert f'pid {holder.pid} on host ' in err
        assert 'another --work-dir' in err and f'kill {holder.pid}' in err
        # refused before the runner wrote anything there
        assert os.listdir(work_dir) == ['.davpt_train.lock']
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait()
    train(work_dir, demo_data)
    assert (work_dir / 'iter_2.pth').is_file()
