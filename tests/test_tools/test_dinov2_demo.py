"""A tiny DINOv2-shaped DA-VPT segmentor (patch 14, LayerScale, 2 register
tokens) trains with the mapping hook (initial mapping and a refresh) and
evaluates, through tools/train.py as a user runs it."""
import json
import os.path as osp
import re

import pytest
import torch

from tests._helpers import ROOT, last_miou, run_main
from tools.make_demo_vit import main as make_demo_vit
from tools.train import main as train_main

CONFIG = osp.join(ROOT,
                  'configs/demo/davpt_setr_dinov2-tiny-reg2_shapes-64x64.py')


@pytest.mark.slow
def test_dinov2_demo_trains_refreshes_mapping_and_evaluates(demo_data,
                                                             tmp_path):
    data_root, _ = demo_data
    vit = str(tmp_path / 'dinov2-tiny-reg2.pth')
    make_demo_vit(['--dinov2-registers', '2', '--out', vit])
    work_dir = tmp_path / 'work'
    opts = [f'model.backbone.init_cfg.checkpoint={vit}']
    opts += [f'{s}_dataloader.dataset.data_root={data_root}'
             for s in ('train', 'val', 'test')]
    log = run_main(train_main, [
        CONFIG, '--work-dir', work_dir, '--cfg-options', *opts,
        'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
        'default_hooks.checkpoint.interval=6',
        'default_hooks.logger.interval=2', 'custom_hooks.0.interval=4'],
        work_dir)
    assert 'Loaded dinov2-layout ViT weights' in log
    assert "dropped pretraining-only keys ['mask_token']" in log
    assert 'DA-VPT: initial mapping (iter 0)' in log
    assert 'DA-VPT: mapping refreshed (iter 3)' in log
    losses = re.findall(r'davpt\.loss_prompt: ([0-9.naif-]+)\s+'
                        r'davpt\.loss_cls: ([0-9.naif-]+)', log)
    assert len(losses) == 3
    for prompt, cls in losses:
        assert torch.isfinite(torch.tensor([float(prompt), float(cls)])).all()
    with open(work_dir / 'davpt_mapping_history.jsonl') as f:
        assert [json.loads(line)['iter'] for line in f] == [0, 3]
    assert last_miou(log) >= 14.  # 16.58 on the seeded demo run
    state = torch.load(work_dir / 'iter_6.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['backbone.register_tokens'].shape == (1, 2, 96)
    assert 'backbone.layers.3.ffn.gamma2.weight' in state
