"""LabelledPixelsHook: a training set with no labelled pixel (all ignore
index) is warned about once, naming the dataset; labelled data is not."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmseg_davpt.engine import LabelledPixelsHook
from tests._helpers import VPT, run_main
from tests.test_datasets.test_transforms.test_check_seg_annotation import \
    write_pair
from tools.train import main as train_main

WARNING = 'No labelled pixel in the first'


@pytest.mark.slow
def test_all_ignore_training_set_is_warned_about_once(demo_data, tmp_path):
    # label maps of only 0, with reduce_zero_label: everything becomes 255
    root = tmp_path / 'all_zero'
    for split in ('train', 'val'):
        for i in range(4):
            write_pair(root, split, f'{i}', np.zeros((16, 16), np.uint8))
    opts = [f'model.backbone.init_cfg.checkpoint={demo_data[1]}']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.dataset.reduce_zero_label=True']
    log = run_main(train_main, [
        VPT, '--work-dir', tmp_path / 'run', '--cfg-options', *opts,
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=4',
        'default_hooks.labelled_pixels.check_iters=2'], tmp_path / 'run')
    assert log.count(WARNING) == 1
    assert ('No labelled pixel in the first 2 training iterations (4 images):'
            ' every label is the ignore index 255') in log
    assert f"data_root='{root}'" in log and 'reduce_zero_label=True' in log


def stub_runner(log):
    dataset = SimpleNamespace(data_root='data/x',
                              data_prefix=dict(seg_map_path='ann'),
                              reduce_zero_label=False)
    return SimpleNamespace(
        iter=0, max_iters=100, model=SimpleNamespace(
            decode_head=SimpleNamespace(ignore_index=255)),
        logger=SimpleNamespace(warning=log.append),
        train_dataloader=SimpleNamespace(dataset=dataset))


def batch(*labelled_pixels):
    samples = []
    for n in labelled_pixels:
        gt = torch.full((1, 4, 4), 255, dtype=torch.uint8)
        gt.view(-1)[:n] = 1
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return dict(inputs=[], data_samples=samples)


def run_hook(batches, check_iters=3):
    log = []
    runner = stub_runner(log)
    hook = LabelledPixelsHook(check_iters=check_iters)
    hook.before_train(runner)
    for it, data in enumerate(batches):
        runner.iter = it
        hook.after_train_iter(runner, it, data)
    return log


def test_warning_only_without_any_labelled_pixel_in_the_window():
    log = run_hook([batch(0, 0)] * 5)  # once, after 3 iterations
    assert len(log) == 1
    assert 'first 3 training iterations (6 images)' in log[0]
    assert "data_root='data/x'" in run_hook([batch(0)] * 3)[0]
    # one labelled pixel anywhere in the window: quiet
    assert run_hook([batch(0, 0), batch(0, 1), batch(0, 0)]) == []
    # labels only after the window: warned (what the run saw at the start)
    assert len(run_hook([batch(0)] * 3 + [batch(5)])) == 1
