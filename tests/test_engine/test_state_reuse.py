"""State reused across runs is checked against the settings it depends on:
the class-statistics cache, the mapping in a resumed checkpoint, mapping
buffers loaded from disk; the initial pass leaves every random state as it
found it."""
import logging
import os.path as osp
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmseg.registry import HOOKS

from mmseg_davpt.engine import ClassPromptMappingHook
from mmseg_davpt.engine.hooks.mapping_settings import (SETTINGS_KEY,
                                                       check_mapping_settings)
from mmseg_davpt.models.guidance.class_prompt_mapping import \
    ClassPromptMapping
from mmseg_davpt.models.guidance.class_statistics import CacheMismatchError
from mmseg_davpt.utils.model import build_model

from tests._tiny import segmentor

from tests._helpers import ROOT
DAVPT = osp.join(ROOT, 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py')
VPT = osp.join(ROOT, 'configs/demo/vpt_setr_vit-tiny_shapes-64x64.py')
CLASSES = ('a', 'b', 'c', 'd', 'e')


def tiny_model(**backbone):
    torch.manual_seed(0)
    return build_model(Config(dict(model=segmentor(**backbone))))


# ------------------------------------------------------------ the cache
def test_statistics_settings_name_what_the_statistics_depend_on():
    base = tiny_model().class_statistics_settings()
    assert base['mapping_layer'] == 2 and base['feature'] == 'query'
    assert base['num_prompts'] == 4 and base['num_guided_prompts'] == 3
    assert len(base['base_weights']) == 64 and len(base['prompts']) == 64
    changed = {
        'mapping_layer': tiny_model(guided_layers=(1, )),
        'num_guided_prompts': tiny_model(num_guided_prompts=2),
        'num_prompts': tiny_model(num_prompts=5),
    }
    for key, model in changed.items():
        assert model.class_statistics_settings()[key] != base[key], key
    other_base = tiny_model()
    with torch.no_grad():
        other_base.backbone.patch_embed.projection.weight.add_(1e-3)
    other = other_base.class_statistics_settings()
    assert other['base_weights'] != base['base_weights']
    assert other['prompts'] == base['prompts']


def test_cache_names_every_difference(tmp_path):
    path = str(tmp_path / 'stats.pth')
    layer1 = tiny_model(guided_layers=(1, ))
    layer3 = tiny_model()
    m = layer1.metric_guidance.mapping
    m.accumulate(torch.randn(4, 64), torch.tensor([0, 1, 2, 3]))
    layer1.save_class_statistics(path, CLASSES,
                                 layer1.class_statistics_settings())
    with pytest.raises(CacheMismatchError) as err:
        layer3.load_class_statistics(path, CLASSES,
                                     layer3.class_statistics_settings())
    # the guided layer's prompts are other tensors as well
    assert [d[0] for d in err.value.differences] == ['mapping_layer',
                                                     'prompts']
    assert 'mapping_layer=1, this run has 2' in str(err.value)
    # a cache written before the settings were recorded: every setting is
    # named as not recorded
    legacy = ClassPromptMapping(5, 3, 64)
    legacy.save_statistics(path, CLASSES)
    with pytest.raises(CacheMismatchError, match="feature='not recorded', "
                       "this run has 'query'"):
        layer3.load_class_statistics(path, CLASSES,
                                     layer3.class_statistics_settings())
    # the same settings load
    layer1.save_class_statistics(path, CLASSES,
                                 layer1.class_statistics_settings())
    tiny_model(guided_layers=(1, )).load_class_statistics(
        path, CLASSES, layer1.class_statistics_settings())


class CacheModel:
    """Stands for a DA-VPT model in the hook: statistics, settings, calls."""

    metric_guidance = object()
    class_mapping_initialized = False
    class_mapping_refreshes = 1

    def __init__(self, settings):
        self.settings = settings
        self.calls = []
        self.real = ClassPromptMapping(2, 2, 4)

    def class_statistics_settings(self):
        return dict(self.settings)

    def save_class_statistics(self, path, classes, settings):
        self.calls.append('save')
        self.real.save_statistics(path, classes, settings)

    def load_class_statistics(self, path, classes, settings):
        self.real.load_statistics(path, classes, settings)
        self.calls.append('load')

    def refresh_class_mapping(self):
        return dict(changed=0, seen_classes=2, assigned_classes=2,
                    unassigned_prompts=0)

    def prompt_class_groups(self, names):
        return [['a'], ['b']]


def hook_runner(tmp_path, model, records):
    dataset = type('FakeDataset', (list, ), dict(
        metainfo=dict(classes=('a', 'b'))))([0, 1])
    logger = logging.getLogger('reliability_state')

    class Recorder(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger.handlers = [Recorder()]
    logger.setLevel(logging.INFO)
    return SimpleNamespace(
        model=model, iter=0, epoch=0, seed=0, work_dir=str(tmp_path),
        cfg=dict(train_dataloader=dict(dataset=dict(data_root='data/x'))),
        logger=logger, train_dataloader=SimpleNamespace(dataset=dataset))


def test_hook_recomputes_a_cache_made_under_other_settings(tmp_path,
                                                          monkeypatch):
    cache = str(tmp_path / 'stats.pth')
    passes = []
    monkeypatch.setattr(ClassPromptMappingHook, '_collect',
                        lambda self, runner, model: passes.append(1))
    records = []
    hook = ClassPromptMappingHook(cache_file=cache)
    model = CacheModel(dict(mapping_layer=1, feature='query'))
    hook.before_train(hook_runner(tmp_path, model, records))
    assert (len(passes), model.calls) == (1, ['save'])
    # same settings: loaded, no pass
    model = CacheModel(dict(mapping_layer=1, feature='query'))
    hook.before_train(hook_runner(tmp_path, model, records))
    assert (len(passes), model.calls) == (1, ['load'])
    # another mapping layer: warned, recomputed, rewritten
    records.clear()
    model = CacheModel(dict(mapping_layer=3, feature='query'))
    hook.before_train(hook_runner(tmp_path, model, records))
    assert (len(passes), model.calls) == (2, ['save'])
    warning = [r for r in records if 'other settings' in r]
    assert warning and 'mapping_layer=1, this run has 3' in warning[0]
    assert torch.load(cache)['settings']['mapping_layer'] == 3
    # the data settings are part of the record
    assert torch.load(cache)['settings']['train_data_root'] == 'data/x'


def test_hook_never_writes_over_a_file_that_is_no_cache(tmp_path,
                                                       monkeypatch):
    not_a_cache = tmp_path / 'vit.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2))), not_a_cache)
    before = not_a_cache.read_bytes()
    monkeypatch.setattr(ClassPromptMappingHook, '_collect',
                        lambda *a: pytest.fail('the pass ran'))
    hook = ClassPromptMappingHook(cache_file=str(not_a_cache))
    with pytest.raises(ValueError, match='is not a class-statistics cache'):
        hook.before_train(hook_runner(tmp_path, CacheModel({}), []))
    assert not_a_cache.read_bytes() == before


def test_initial_pass_leaves_every_random_state_as_it_found_it(
        tmp_path, monkeypatch):
    def drawing_collect(self, runner, model):
        random.random()
        np.random.rand(3)
        torch.rand(3)

    monkeypatch.setattr(ClassPromptMappingHook, '_collect', drawing_collect)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    ClassPromptMappingHook().before_train(
        hook_runner(tmp_path, CacheModel({}), []))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == \
        expected


# ------------------------------------------------------------ training
@HOOKS.register_module(force=True)
class LossRecorder(Hook):
    """Keeps the loss values of every training iteration."""

    losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        LossRecorder.losses.append(
            {k: float(v.detach()) for k, v in outputs.items()
             if 'loss' in k})


def train_losses(config, work_dir, demo_data, *options):
    data_root, vit = demo_data
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({
        'model.backbone.init_cfg.checkpoint': vit,
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_cfg.max_iters': 3, 'train_cfg.val_interval': 100,
        'default_hooks.checkpoint.interval': 100,
        'randomness.seed': 0,
        **dict(options)})
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='LossRecorder')]
    cfg.work_dir = str(work_dir)
    LossRecorder.losses = []
    Runner.from_cfg(cfg).train()
    return LossRecorder.losses


@pytest.mark.slow
def test_same_seed_trains_the_same_with_or_without_the_cache(demo_data,
                                                            tmp_path):
    """The pass runs the training pipeline (random flips draw from NumPy's
    global generator): with the cache file the pass is skipped, and the
    losses must still be those of the run that made it."""
    cache = str(tmp_path / 'stats.pth')
    option = ('custom_hooks.0.cache_file', cache)
    without = train_losses(DAVPT, tmp_path / 'a', demo_data, option)
    assert osp.isfile(cache)
    with_cache = train_losses(DAVPT, tmp_path / 'b', demo_data, option)
    assert len(without) == 3 and without == with_cache


@pytest.mark.slow
def test_zero_guidance_weights_give_the_vpt_losses(demo_data, tmp_path):
    """DA-VPT with both metric-loss weights 0 trains as VPT with the same
    prompt layout: the initial pass and the guidance draw nothing from the
    training's random streams."""
    layout = [('model.backbone.guided_layers', (3, )),
              ('model.backbone.num_guided_prompts', 3)]
    vpt = train_losses(VPT, tmp_path / 'vpt', demo_data, *layout)
    davpt = train_losses(
        DAVPT, tmp_path / 'davpt', demo_data,
        ('model.metric_guidance.loss_prompt.loss_weight', 0.),
        ('model.metric_guidance.loss_cls.loss_weight', 0.))
    assert len(vpt) == 3
    for step_vpt, step_davpt in zip(vpt, davpt):
        for key, value in step_vpt.items():
            assert step_davpt[key] == pytest.approx(value, abs=1e-6), key


# ------------------------------------------------------------ resume
def test_resumed_mapping_settings_are_recorded_and_compared(tmp_path):
    records = []
    hook = ClassPromptMappingHook()
    layer2 = tiny_model()
    checkpoint = {}
    hook.before_save_checkpoint(hook_runner(tmp_path, layer2, records),
                                checkpoint)
    saved = checkpoint['meta'][SETTINGS_KEY]
    assert saved == dict(guided_layers=[2], mapping_layer=2, feature='query',
                         token_source='attention_output',
                         cls_source='attention_output',
                         pooling='class_masked', num_classes=5,
                         num_guided_prompts=3)
    # same tensor shapes, other guided layer: stops, naming both
    layer1 = tiny_model(guided_layers=(1, ))
    with pytest.raises(ValueError) as err:
        hook.after_load_checkpoint(hook_runner(tmp_path, layer1, records),
                                   checkpoint)
    for part in ('guided_layers: checkpoint [2], this run [1]',
                 'mapping_layer: checkpoint 2, this run 1', 'load_from'):
        assert part in str(err.value)
    check_mapping_settings(saved, layer2.class_mapping_settings())


def test_restored_mapping_message_says_what_was_checked(tmp_path):
    model = tiny_model()
    model.metric_guidance.mapping.num_refreshes.fill_(2)
    for resumed, words in ((None, 'taken from the loaded weights'),
                           (False, 'does not record the settings'),
                           (True, 'its settings match')):
        records = []
        hook = ClassPromptMappingHook()
        hook._resumed_settings = resumed
        hook.before_train(hook_runner(tmp_path, model, records))
        assert any(words in r for r in records), records


@pytest.mark.slow
def test_resume_after_changing_guided_layers_stops(demo_data, tmp_path):
    """Guided layer 3 -> 2 with as many guided as ordinary prompts: every
    tensor keeps its shape, so only the recorded settings tell."""
    same_shapes = ('model.backbone.num_guided_prompts', 4)
    work = tmp_path / 'run'
    train_losses(DAVPT, work, demo_data, same_shapes,
                 ('train_cfg.max_iters', 2),
                 ('default_hooks.checkpoint.interval', 2))
    with pytest.raises(ValueError, match=r'guided_layers: checkpoint \[3\], '
                       r'this run \[2\]'):
        train_losses(DAVPT, work, demo_data, same_shapes,
                     ('model.backbone.guided_layers', (2, )),
                     ('train_cfg.max_iters', 4), ('resume', True))


# ------------------------------------------------------------ mapping ids
@pytest.mark.parametrize('bad', [-2, 3, 7])
def test_mapping_ids_out_of_range_are_refused_on_load(bad):
    model = tiny_model()
    state = model.state_dict()
    key = 'metric_guidance.mapping.class_to_prompt'
    state[key] = torch.tensor([0, 1, bad, -1, 2])
    with pytest.raises(ValueError) as err:
        model.load_state_dict(state)
    message = str(err.value)
    assert key in message and f'class 2 -> {bad}' in message
    assert 'valid: 0..2, or -1 for no prompt' in message
    # valid ids (with -1 = no prompt) load
    state[key] = torch.tensor([0, 1, 2, -1, 2])
    model.load_state_dict(state)
    assert model.metric_guidance.mapping.class_to_prompt.tolist() == \
        [0, 1, 2, -1, 2]


def test_mapping_ids_are_checked_through_mmengine_loading(tmp_path):
    """mmengine's loader (resume, load_from, tools/test.py) walks the
    modules itself: the check sits where every loader passes."""
    from mmengine.runner.checkpoint import load_state_dict
    model = tiny_model()
    state = model.state_dict()
    state['metric_guidance.mapping.class_to_prompt'] = torch.tensor(
        [0, 1, 9, -1, 2])
    with pytest.raises(ValueError, match='class 2 -> 9'):
        load_state_dict(model, state)
