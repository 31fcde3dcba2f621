"""A killed DA-VPT run resumed with --resume ends bit-identical (CPU,
num_workers=0) to an uninterrupted run: weights, prompts, optimizer moments,
mapping, centroids and class statistics."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests._helpers import DAVPT, ROOT, data_options

SETTINGS = ['train_cfg.max_iters=10', 'train_cfg.val_interval=10',
            'default_hooks.checkpoint.interval=3',
            'default_hooks.logger.interval=5', 'custom_hooks.0.interval=4']


def train(config, work_dir, data, *extra):
    return subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--work-dir',
         str(work_dir), *extra, '--cfg-options', *data_options(*data),
         *SETTINGS],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(demo_data, tmp_path):
    straight = tmp_path / 'straight'
    proc = train(DAVPT, straight, demo_data)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killing = tmp_path / 'killing.py'
    killing.write_text(
        f"_base_ = [{DAVPT!r}]\n"
        "custom_imports = dict(imports=['mmseg_davpt', 'tests._kill_hook'],"
        " allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='ClassPromptMappingHook'),\n"
        "                dict(type='KillAtIterHook', at_iter=8)]\n")
    crashed = tmp_path / 'crashed'
    proc = train(killing, crashed, demo_data)
    assert proc.returncode == -9  # SIGKILL after iteration 8
    assert osp.isfile(crashed / 'iter_6.pth')
    assert not osp.isfile(crashed / 'iter_9.pth')

    proc = train(DAVPT, crashed, demo_data, '--resume')
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 6' in log
    assert 'Restored RNG states from the checkpoint' in log

    a = torch.load(straight / 'iter_10.pth', weights_only=False)
    b = torch.load(crashed / 'iter_10.pth', weights_only=False)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    for sa, sb in zip(a['optimizer']['state'].values(),
                      b['optimizer']['state'].values()):
        for name in sa:
            assert torch.equal(torch.as_tensor(sa[name]),
                               torch.as_tensor(sb[name])), name


# Checks before mmengine resumes (mmseg_davpt/apis/resume.py), on the tiny
# segmentor of tests/_tiny.py with hand-made checkpoints.

def _tiny(**backbone):
    from mmengine.config import Config

    import mmseg_davpt  # noqa: F401
    from mmseg_davpt.utils.model import build_model
    from tests._tiny import segmentor
    return build_model(Config(dict(model=segmentor(**backbone))))


def _training_checkpoint(model, path):
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(iter=6, epoch=0), message_hub={},
                    optimizer=optimizer.state_dict()), path)
    return len(trainable)


def test_check_resume_checkpoint(tmp_path):
    import pytest

    from mmseg_davpt.apis import (CheckpointMismatchError,
                                  check_resume_checkpoint)
    model = _tiny()
    path = str(tmp_path / 'iter_6.pth')
    count = _training_checkpoint(model, path)
    assert check_resume_checkpoint(model, path)['meta']['iter'] == 6
    with pytest.raises(CheckpointMismatchError,
                       match=r'backbone\.prompts\.\{0-1\}: checkpoint '
                       r'\(4, 64\), model \(6, 64\)'):
        check_resume_checkpoint(_tiny(num_prompts=6), path)
    # same keys and shapes, more trainable tensors (k and v biases)
    kv = _tiny(tune_params='kv')
    with pytest.raises(CheckpointMismatchError,
                       match=f'covers {count} tensors, but this model trains '
                       f'{count + 6}'):
        check_resume_checkpoint(kv, path)
    weights = str(tmp_path / 'weights.pth')
    torch.save(dict(state_dict=model.state_dict()), weights)
    with pytest.raises(ValueError, match=r'holds no training state \(meta, '
                       r'message_hub missing\)'):
        check_resume_checkpoint(model, weights)
    peft = str(tmp_path / 'peft.pth')
    torch.save(dict(state_dict={}, meta=dict(peft=dict(
        base_fingerprint='0' * 64))), peft)
    with pytest.raises(ValueError, match='is a PEFT checkpoint'):
        check_resume_checkpoint(model, peft)
