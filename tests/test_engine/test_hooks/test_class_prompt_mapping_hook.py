"""ClassPromptMappingHook: refresh schedule, the initial pass's loader,
cache-file checks, the refresh history, and bad settings."""
import json
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from mmengine.registry import DATASETS
from mmengine.runner import Runner

from mmseg_davpt.engine import ClassPromptMappingHook


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval must be > 0'),
    (dict(begin=-1), 'begin must be >= 0'),
    (dict(init_max_iters=0), 'init_max_iters must be > 0'),
])
def test_bad_hook_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassPromptMappingHook(**kwargs)


def refreshes(hook, n=12):
    return [i for i in range(n) if hook.refreshes_after(i)]


def test_schedule_interval_begin_and_off():
    assert refreshes(ClassPromptMappingHook(interval=4)) == [3, 7, 11]
    # the released code's dynamic_kmeans=3: from epoch 3 on, every epoch
    released = ClassPromptMappingHook(by_epoch=True, interval=1, begin=3)
    assert refreshes(released) == list(range(3, 12))
    assert refreshes(ClassPromptMappingHook(interval=4, begin=5)) == [7, 11]
    # dynamic_kmeans=0: the initial mapping only
    assert refreshes(ClassPromptMappingHook(by_epoch=True, interval=1,
                                            refresh=False)) == []


class FakeModel:
    """Records the hook's calls to the model's public mapping methods."""

    metric_guidance = object()
    class_mapping_initialized = False

    def __init__(self):
        self.calls = []

    def reset_class_statistics(self):
        self.calls.append('reset')

    def refresh_class_mapping(self):
        self.calls.append('refresh')
        return dict(changed=1, seen_classes=2, assigned_classes=2,
                    unassigned_prompts=0)

    def prompt_class_groups(self, names):
        return [['a'], ['b']]

    def class_statistics_settings(self):
        return {}


def fake_runner(tmp_path, model):
    dataset = type('FakeDataset', (list, ), dict(
        metainfo=dict(classes=('a', 'b'))))([0, 1])
    return SimpleNamespace(model=model, iter=0, epoch=0, cfg={}, seed=0,
                           work_dir=str(tmp_path),
                           logger=logging.getLogger('test_hook'),
                           train_dataloader=SimpleNamespace(dataset=dataset))


def test_statistics_window_is_reset_before_each_refresh(tmp_path):
    # released dynamic_kmeans=2: statistics of epoch i only, refresh after it
    model = FakeModel()
    runner = fake_runner(tmp_path, model)
    hook = ClassPromptMappingHook(by_epoch=True, interval=1, begin=2)
    for epoch in range(4):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        model.calls.append(f'epoch {epoch}')
        hook.after_train_epoch(runner)
    assert model.calls == ['epoch 0', 'epoch 1', 'reset', 'epoch 2',
                           'refresh', 'reset', 'epoch 3', 'refresh']
    # iteration-based, interval 3, begin 4: the window of the refresh after
    # iteration 5 opens at iteration 3
    model.calls.clear()
    hook = ClassPromptMappingHook(interval=3, begin=4)
    for it in range(9):
        runner.iter = it
        hook.before_train_iter(runner, it)
        model.calls.append(it)
        hook.after_train_iter(runner, it)
    assert model.calls == [0, 1, 2, 'reset', 3, 4, 5, 'refresh', 'reset', 6,
                           7, 8, 'refresh']


def test_history_is_json_lines_and_a_damaged_file_only_warns(tmp_path):
    model = FakeModel()
    runner = fake_runner(tmp_path, model)
    path = osp.join(tmp_path, 'davpt_mapping_history.jsonl')
    with open(path, 'w') as f:  # a run killed in the middle of a write
        f.write(json.dumps(dict(iter=0, what='initial mapping')) + '\n')
        f.write('{"iter": 4, "what": "mapp')
    hook = ClassPromptMappingHook(interval=4)
    runner.iter = 3
    with pytest.warns(UserWarning, match='davpt_mapping_history.jsonl: '
                      r'line\(s\) \[2\] are not valid JSON'):
        hook.after_train_iter(runner, 3)
    runner.iter = 7
    hook.after_train_iter(runner, 7)
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in lines[2:]]
    assert [r['iter'] for r in records] == [3, 7]
    assert records[0]['prompts'] == {'0': ['a'], '1': ['b']}
    assert records[0]['changed'] == 1


def test_cache_folder_is_created_before_the_initial_pass(tmp_path,
                                                         monkeypatch):
    cache = str(tmp_path / 'new' / 'folder' / 'stats.pth')
    seen = {}

    def collect(self, runner, model):
        seen['folder_exists'] = osp.isdir(osp.dirname(cache))
        raise KeyboardInterrupt  # stop right after the check

    monkeypatch.setattr(ClassPromptMappingHook, '_collect', collect)
    hook = ClassPromptMappingHook(cache_file=cache)
    with pytest.raises(KeyboardInterrupt):
        hook.before_train(fake_runner(tmp_path, FakeModel()))
    assert seen['folder_exists']


def test_uncreatable_cache_folder_fails_before_the_pass(tmp_path,
                                                       monkeypatch):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')  # a file where the cache folder should go
    monkeypatch.setattr(ClassPromptMappingHook, '_collect',
                        lambda *a: pytest.fail('pass ran before the check'))
    hook = ClassPromptMappingHook(cache_file=str(blocker / 'sub' / 'x.pth'))
    with pytest.raises(OSError, match='cannot create the folder .* of '
                       'cache_file'):
        hook.before_train(fake_runner(tmp_path, FakeModel()))


def test_cache_file_that_is_a_folder_is_a_clear_error(tmp_path):
    hook = ClassPromptMappingHook(cache_file=str(tmp_path))
    with pytest.raises(ValueError, match='is a folder'):
        hook.before_train(fake_runner(tmp_path, FakeModel()))


@DATASETS.register_module(force=True)
class RangeDataset(torch.utils.data.Dataset):
    """Items 0..size-1."""

    def __init__(self, size=10):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return i


def test_initial_pass_loader_is_built_by_the_runner_from_the_train_config():
    cfg = Config(dict(
        train_dataloader=dict(batch_size=3, num_workers=0,
                              sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='default_collate'),
                              dataset=dict(type='RangeDataset', size=10)),
        randomness=dict(seed=7)))
    runner = SimpleNamespace(cfg=cfg, seed=7,
                             build_dataloader=Runner.build_dataloader)
    loader = ClassPromptMappingHook._epoch_loader(runner)
    assert isinstance(loader.dataset, RangeDataset)
    assert isinstance(loader.sampler, DefaultSampler)
    assert loader.sampler.shuffle and loader.sampler.seed == 7
    assert loader.batch_size == 3
    assert loader.worker_init_fn is not None  # seeded like training
    batches = [b.tolist() for b in loader]
    assert sorted(sum(batches, [])) == list(range(10))
    assert batches != [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # shuffled
    # the same order as a fresh build (the runner's seed)
    again = [b.tolist() for b in ClassPromptMappingHook._epoch_loader(runner)]
    assert batches == again
    # the training config itself is untouched
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'


class CountingModel(FakeModel):
    """``FakeModel`` that also takes the initial pass's batches."""

    training = True

    def __init__(self):
        super().__init__()
        self.batches = []

    def data_preprocessor(self, batch, training):
        return dict(inputs=batch, data_samples=None)

    def collect_class_features(self, inputs, data_samples):
        self.batches.append(inputs.tolist())

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode


@pytest.mark.parametrize('init_max_iters, batches', [(None, 4), (2, 2),
                                                     (9, 4)])
def test_initial_pass_stops_after_init_max_iters_batches(
        tmp_path, init_max_iters, batches):
    # 10 items in batches of 3: one epoch is 4 batches
    model = CountingModel()
    runner = fake_runner(tmp_path, model)
    runner.cfg = Config(dict(train_dataloader=dict(
        batch_size=3, num_workers=0, sampler=dict(type='InfiniteSampler'),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='RangeDataset', size=10))))
    runner.seed = 0
    runner.build_dataloader = Runner.build_dataloader
    ClassPromptMappingHook(init_max_iters=init_max_iters).before_train(runner)
    assert len(model.batches) == batches
    assert model.calls == ['refresh'] and model.training
    with open(osp.join(tmp_path, 'davpt_mapping_history.jsonl')) as f:
        assert [json.loads(line)['what'] for line in f] == ['initial mapping']


@pytest.mark.parametrize('refresh, calls', [
    (True, ['reset', 0, 1, 'refresh', 'reset', 2, 3, 'refresh']),
    (False, [0, 1, 2, 3]),
])
def test_refresh_off_keeps_the_initial_mapping_during_training(
        tmp_path, refresh, calls):
    model = FakeModel()
    runner = fake_runner(tmp_path, model)
    hook = ClassPromptMappingHook(interval=2, refresh=refresh)
    for it in range(4):
        runner.iter = it
        hook.before_train_iter(runner, it)
        model.calls.append(it)
        hook.after_train_iter(runner, it)
    assert model.calls == calls
    history = osp.join(tmp_path, 'davpt_mapping_history.jsonl')
    assert osp.isfile(history) == refresh
