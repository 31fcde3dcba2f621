"""A 2-rank CPU DA-VPT run matches a 1-process run with the same global
batch: same images per step (InfiniteSampler shards one permutation), class
draws seeded per image, metric-loss samples gathered across ranks, per-pixel
losses averaged by DDP. Stated tolerance 1e-4 (summation order; Adam's
normalised updates amplify tiny gradient differences)."""
import subprocess
import sys

import pytest
import torch

from tests._helpers import (DAVPT, ROOT, data_options, free_port,
                            tool_env)

COMMON = ['train_cfg.max_iters=4', 'train_cfg.val_interval=100',
          'default_hooks.checkpoint.interval=4',
          'default_hooks.logger.interval=2', 'custom_hooks.0.interval=2']


def comparable_config(tmp_path):
    """No random flips and no BatchNorm in the heads: per-rank flips and
    per-rank BN statistics (SyncBN needs CUDA) would differ by design."""
    path = tmp_path / 'comparable.py'
    path.write_text(
        f'_base_ = [{DAVPT!r}]\n'
        'model = dict(\n'
        '    metric_guidance=dict(gather_across_ranks=True),\n'
        '    decode_head=dict(norm_cfg=None),\n'
        '    auxiliary_head=[dict(h, norm_cfg=None)\n'
        '                    for h in _base_.model.auxiliary_head])\n'
        "train_dataloader = dict(dataset=dict(pipeline=[\n"
        "    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),\n"
        "    dict(type='PackSegInputs')]))\n")
    return str(path)


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(
        demo_data, tmp_path):
    config = comparable_config(tmp_path)
    opts = ['--cfg-options', *data_options(*demo_data), *COMMON]
    env = tool_env(1)
    single = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir',
         str(tmp_path / 'single'), *opts, 'train_dataloader.batch_size=8'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    env = tool_env(1, PORT=free_port())
    double = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
         str(tmp_path / 'double'), *opts, 'train_dataloader.batch_size=4'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]

    a = torch.load(tmp_path / 'single' / 'iter_4.pth',
                   weights_only=False)['state_dict']
    b = torch.load(tmp_path / 'double' / 'iter_4.pth',
                   weights_only=False)['state_dict']
    key = 'metric_guidance.mapping.class_to_prompt'
    assert torch.equal(a[key], b[key])
    trained = [k for k in a if k.startswith(('backbone.prompts',
                                             'decode_head', 'auxiliary'))]
    assert trained
    worst = max((a[k].float() - b[k].float()).abs().max().item()
                for k in trained)
    assert worst <= 1e-4, worst
    print(f'largest difference after 4 steps: {worst:.2e}')
    assert 'identical on all 2 ranks' in double.stdout + double.stderr
