"""WarmupCosineLR: linear warm-up inside one cosine that spans the whole run
(warm-up included), stepped per iteration, as DA-VPT's classification
recipes train (paper App. A.2)."""
import argparse
import math

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch.utils.data import DataLoader, TensorDataset

import mmseg_davpt  # noqa: F401  (registers WarmupCosineLR)
from mmseg_davpt.engine.schedulers import WarmupCosineLR

EPOCHS, WARMUP, ITERS_PER_EPOCH = 3, 1, 4
LR, WARMUP_LR, MIN_LR = 0.1, 1e-3, 1e-4
SCHEDULE = dict(type='WarmupCosineLR', epochs=EPOCHS, warmup_epochs=WARMUP,
                warmup_lr=WARMUP_LR, min_lr=MIN_LR, by_epoch=True,
                convert_to_iter_based=True)


def expected_lr(k, per_epoch=ITERS_PER_EPOCH):
    """Rate iteration ``k`` (0-based) trains with: linear from WARMUP_LR over
    the warm-up, then one cosine over all EPOCHS * per_epoch iterations
    whose phase counts from iteration 0, then MIN_LR."""
    total, warmup = EPOCHS * per_epoch, WARMUP * per_epoch
    if k < warmup:
        return WARMUP_LR + (LR - WARMUP_LR) * k / warmup
    if k >= total:
        return MIN_LR
    return MIN_LR + (LR - MIN_LR) * (1 + math.cos(math.pi * k / total)) / 2


def two_group_optim_wrapper():
    """A tiny model whose ``head`` group has ``lr_mult=0.1``."""
    model = nn.Sequential()
    model.add_module('body', nn.Linear(4, 4))
    model.add_module('head', nn.Linear(4, 2))
    return build_optim_wrapper(
        model,
        dict(optimizer=dict(type='SGD', lr=LR),
             paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=0.1)})))


def build_scheduler(optim_wrapper, scope='mmseg'):
    from mmengine.registry import PARAM_SCHEDULERS
    with DefaultScope.overwrite_default_scope(scope):
        return PARAM_SCHEDULERS.build(
            dict(SCHEDULE, optimizer=optim_wrapper,
                 epoch_length=ITERS_PER_EPOCH))


def lrs_per_iteration(optim_wrapper, scheduler, iters):
    """Rate of every group at each iteration, stepping the optimizer first
    as mmengine's train loop does."""
    seen = []
    for _ in range(iters):
        seen.append([g['lr'] for g in optim_wrapper.optimizer.param_groups])
        optim_wrapper.step()
        scheduler.step()
    return seen


def test_hand_computed_values_and_no_restart_at_warmup_end():
    wrapper = two_group_optim_wrapper()
    seen = lrs_per_iteration(wrapper, build_scheduler(wrapper), 14)
    body = [lrs[0] for lrs in seen]
    # 12 iterations, 4 of warm-up: cos(pi * k / 12) at k = 4, 6, 8 is
    # 1/2, 0, -1/2. A cosine restarted at the warm-up end would give LR at k=4.
    hand = {0: 1e-3, 2: 1e-3 + 0.099 / 2, 4: 1e-4 + 0.0999 * 0.75,
            6: 1e-4 + 0.0999 * 0.5, 8: 1e-4 + 0.0999 * 0.25, 12: 1e-4,
            13: 1e-4}
    for k, value in hand.items():
        assert body[k] == pytest.approx(value, rel=1e-12), k
    assert max(body) < LR


def test_every_iteration_matches_the_formula_and_groups_keep_their_ratio():
    wrapper = two_group_optim_wrapper()
    assert [g['lr'] for g in wrapper.optimizer.param_groups] == [
        LR, LR, LR * 0.1, LR * 0.1]
    seen = lrs_per_iteration(wrapper, build_scheduler(wrapper), 16)
    for k, (body_w, body_b, head_w, head_b) in enumerate(seen):
        assert body_w == body_b == pytest.approx(expected_lr(k), rel=1e-12)
        assert head_w == head_b == pytest.approx(0.1 * expected_lr(k),
                                                 rel=1e-12)


def test_resumed_from_state_dicts_continues_the_same_schedule():
    """As a resumed run: fresh optimizer and scheduler (which set step 0),
    then the saved optimizer and scheduler states."""
    wrapper = two_group_optim_wrapper()
    scheduler = build_scheduler(wrapper)
    lrs_per_iteration(wrapper, scheduler, 5)
    saved = wrapper.state_dict(), scheduler.state_dict()

    resumed_wrapper = two_group_optim_wrapper()
    resumed = build_scheduler(resumed_wrapper)
    resumed_wrapper.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    seen = lrs_per_iteration(resumed_wrapper, resumed, 9)
    for k, lrs in enumerate(seen, start=5):
        assert lrs[0] == pytest.approx(expected_lr(k), rel=1e-12), k
        assert lrs[2] == pytest.approx(0.1 * expected_lr(k), rel=1e-12), k


def test_registered_for_classification_scope():
    pytest.importorskip('mmpretrain')
    wrapper = two_group_optim_wrapper()
    scheduler = build_scheduler(wrapper, scope='mmpretrain')
    assert isinstance(scheduler, WarmupCosineLR) and not scheduler.by_epoch
    assert (scheduler.total, scheduler.warmup) == (12, 4)


def test_epoch_based_without_conversion_steps_once_per_epoch():
    wrapper = two_group_optim_wrapper()
    scheduler = WarmupCosineLR(wrapper, epochs=EPOCHS, warmup_epochs=WARMUP,
                               warmup_lr=WARMUP_LR, min_lr=MIN_LR)
    seen = lrs_per_iteration(wrapper, scheduler, 4)
    for epoch, lrs in enumerate(seen):
        assert lrs[0] == pytest.approx(expected_lr(epoch, per_epoch=1),
                                       rel=1e-12)


def test_matches_timm_cosine_scheduler_on_updates_and_on_epochs():
    """timm's CosineLRScheduler as ``create_scheduler(args, optimizer,
    updates_per_epoch)`` builds it, driven as a timm training loop drives
    it: ``step_update(num_updates)`` after every optimizer step,
    ``step(epoch + 1)`` after every epoch. Skipped without timm."""
    timm_scheduler = pytest.importorskip('timm.scheduler')
    for on_updates in (True, False):
        args = argparse.Namespace(
            sched='cosine', epochs=EPOCHS, warmup_epochs=WARMUP,
            warmup_lr=WARMUP_LR, min_lr=MIN_LR, sched_on_updates=on_updates)
        params = [nn.Parameter(torch.zeros(2))]
        optimizer = torch.optim.AdamW(params, lr=LR)
        timm_sched, _ = timm_scheduler.create_scheduler(
            args, optimizer, updates_per_epoch=ITERS_PER_EPOCH)
        timm_lrs, updates = [], 0
        for epoch in range(EPOCHS + 1):
            for _ in range(ITERS_PER_EPOCH):
                timm_lrs.append(optimizer.param_groups[0]['lr'])
                optimizer.step()
                updates += 1
                timm_sched.step_update(num_updates=updates)
            timm_sched.step(epoch + 1)

        wrapper = two_group_optim_wrapper()
        if on_updates:
            ours = build_scheduler(wrapper)
        else:
            ours = WarmupCosineLR(wrapper, epochs=EPOCHS,
                                  warmup_epochs=WARMUP, warmup_lr=WARMUP_LR,
                                  min_lr=MIN_LR)
        our_lrs = []
        for _ in range(EPOCHS + 1):
            for _ in range(ITERS_PER_EPOCH):
                our_lrs.append(wrapper.optimizer.param_groups[0]['lr'])
                wrapper.step()
                if on_updates:
                    ours.step()
            if not on_updates:
                ours.step()
        assert our_lrs == pytest.approx(timm_lrs, rel=1e-12), on_updates


class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x, mode='tensor'):
        out = self.head(self.body(x))
        return dict(loss=out.square().mean()) if mode == 'loss' else out


class _RecordLR(Hook):
    """Rate logged for each training iteration, and the rates the optimizer
    holds while that iteration's step runs."""

    def __init__(self):
        self.logged, self.used = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.logged.append(
            runner.message_hub.get_scalar('train/lr').current())
        self.used.append(
            [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups])


def test_runner_trains_iteration_k_with_lr_k(tmp_path):
    data = TensorDataset(torch.randn(2 * ITERS_PER_EPOCH, 4))
    recorder = _RecordLR()
    runner = Runner(
        model=_TinyModel(),
        work_dir=str(tmp_path),
        train_dataloader=DataLoader(data, batch_size=2, shuffle=False),
        train_cfg=dict(by_epoch=True, max_epochs=EPOCHS),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=LR, weight_decay=0.),
            paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=0.1)})),
        param_scheduler=dict(
            {k: v for k, v in SCHEDULE.items() if k != 'type'},
            type='WarmupCosineLR'),
        default_hooks=dict(checkpoint=None,
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[recorder],
        default_scope='mmseg',
        experiment_name='warmup_cosine_lr_runner')
    runner.train()
    total = EPOCHS * ITERS_PER_EPOCH
    assert len(recorder.logged) == total
    for k in range(total):
        assert recorder.logged[k] == pytest.approx(expected_lr(k), rel=1e-12)
        body_w, body_b, head_w, head_b = recorder.used[k]
        assert body_w == pytest.approx(expected_lr(k), rel=1e-12)
        assert head_w == pytest.approx(0.1 * expected_lr(k), rel=1e-12)


@pytest.mark.parametrize('kwargs, message', [
    (dict(epochs=10, warmup_epochs=10), 'warmup_epochs < epochs'),
    (dict(epochs=10, warmup_epochs=-1), '`warmup_epochs` must be'),
    (dict(epochs=10, min_lr=-1e-3), '`min_lr` must be'),
    (dict(epochs=float('nan')), '`epochs` must be'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineLR(two_group_optim_wrapper(), **kwargs)


def test_optimizer_without_lr_is_a_clear_error():
    wrapper = two_group_optim_wrapper()
    wrapper.optimizer.defaults['lr'] = 0.
    with pytest.raises(ValueError, match="optimizer's own positive `lr`"):
        WarmupCosineLR(wrapper, epochs=10)
