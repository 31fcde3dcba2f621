"""The random fixed class -> prompt assignment (the mapping ablation):
``ClassPromptMapping.assign_random`` and ``ClassPromptMappingHook(initial=
'random')``."""
import logging
from types import SimpleNamespace

import pytest
import torch

from mmseg_davpt.engine import ClassPromptMappingHook
from mmseg_davpt.models.guidance.class_prompt_mapping import \
    ClassPromptMapping


def test_random_assignment_is_seeded_balanced_and_fixed_state():
    m = ClassPromptMapping(num_classes=5, num_prompts=3, embed_dims=4)
    m.feat_sum.fill_(1.)
    m.feat_count.fill_(2.)
    stats = m.assign_random(seed=7)
    mapping = m.class_to_prompt.clone()
    # round-robin over a shuffle: group sizes 2, 2, 1, every prompt used
    assert sorted(torch.bincount(mapping, minlength=3).tolist()) == [1, 2, 2]
    assert stats == dict(changed=5, seen_classes=0, assigned_classes=5,
                         unassigned_prompts=0)
    assert m.initialized and int(m.num_refreshes) == 1
    assert m.feat_count.sum() == 0 and m.feat_sum.abs().sum() == 0
    # the same seed, the same mapping (every rank agrees)
    other = ClassPromptMapping(num_classes=5, num_prompts=3, embed_dims=4)
    other.assign_random(seed=7)
    assert torch.equal(other.class_to_prompt, mapping)
    # the independent expectation: shuffle with the same generator, deal
    order = torch.randperm(5, generator=torch.Generator().manual_seed(7))
    expected = torch.empty(5, dtype=torch.long)
    for rank, c in enumerate(order.tolist()):
        expected[c] = rank % 3
    assert torch.equal(mapping, expected)
    # other seeds give other groupings
    groupings = set()
    for seed in range(6):
        m.assign_random(seed)
        groupings.add(tuple(m.class_to_prompt.tolist()))
    assert len(groupings) > 1
    # it is model state: saved in and restored from a state dict
    restored = ClassPromptMapping(num_classes=5, num_prompts=3, embed_dims=4)
    restored.load_state_dict(m.state_dict())
    assert torch.equal(restored.class_to_prompt, m.class_to_prompt)


class FakeModel:
    """Records the hook's calls to the model's mapping methods."""

    metric_guidance = object()
    class_mapping_initialized = False

    def __init__(self):
        self.calls = []

    def assign_random_class_mapping(self, seed):
        self.calls.append(('random', seed))
        return dict(changed=5, seen_classes=0, assigned_classes=5,
                    unassigned_prompts=0)

    def collect_class_features(self, *args):
        self.calls.append('collect')

    def refresh_class_mapping(self):
        self.calls.append('refresh')
        return dict(changed=1, seen_classes=5, assigned_classes=5,
                    unassigned_prompts=0)

    def reset_class_statistics(self):
        self.calls.append('reset')

    def prompt_class_groups(self, names):
        return [['a', 'b'], ['c']]


def fake_runner(tmp_path, model, seed=3):
    dataset = SimpleNamespace(metainfo=dict(classes=('a', 'b', 'c')))
    return SimpleNamespace(model=model, iter=0, epoch=0, seed=seed,
                           work_dir=str(tmp_path),
                           logger=logging.getLogger('test_random_mapping'),
                           train_dataloader=SimpleNamespace(dataset=dataset))


@pytest.mark.parametrize('random_seed, used', [(None, 3), (11, 11)])
def test_hook_random_initial_skips_the_pass_and_never_refreshes(
        tmp_path, random_seed, used):
    model = FakeModel()
    runner = fake_runner(tmp_path, model)
    hook = ClassPromptMappingHook(by_epoch=True, interval=1, refresh=False,
                                  initial='random', random_seed=random_seed)
    hook.before_train(runner)  # would build a loader for a k-means pass
    for epoch in range(3):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        hook.after_train_epoch(runner)
    assert model.calls == [('random', used)]
    history = (tmp_path / 'davpt_mapping_history.jsonl').read_text()
    assert f'random fixed mapping (seed {used})' in history


@pytest.mark.parametrize('kwargs, match', [
    (dict(initial='random'), 'set refresh=False'),
    (dict(initial='kmean', refresh=False), "initial must be one of"),
])
def test_hook_random_initial_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassPromptMappingHook(**kwargs)
