"""Hook that saves and restores random-number-generator states with
checkpoints, so a resumed run draws the same random numbers (augmentation,
DA-VPT's per-image class sampling, dropout) as an uninterrupted one."""
import random

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import CheckpointHook, Hook
from mmseg.registry import HOOKS

from ...utils.registry import also_in_mmpretrain


def _capture() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _restore_host(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])


def _restore_torch(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@also_in_mmpretrain('HOOKS')
@HOOKS.register_module()
class RNGStateHook(Hook):
    """Store every rank's Python / NumPy / torch RNG states in checkpoints
    (``meta['rng_states']``) and restore them on ``--resume``.

    mmengine restores weights, optimizer, schedulers, iteration and the data
    order, but not RNG states; without them a resumed run flips, crops and
    samples differently from an uninterrupted one. With ``num_workers=0``
    (augmentation in the main process) resumed training is then
    bit-identical on CPU. With data-loading workers, augmentation draws from
    the workers' own generators, which mmengine re-seeds when the loader is
    rebuilt, so those draws still differ after a resume.
    """

    # before CheckpointHook (VERY_LOW) in after_train_iter / _epoch
    priority = 'LOW'

    def __init__(self):
        self._pending_torch_state = None
        self._gathered = None

    def _checkpoint_due(self, runner, by_epoch: bool) -> bool:
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.by_epoch == by_epoch:
                if by_epoch:
                    return self.every_n_epochs(
                        runner, hook.interval, hook.save_begin) or (
                            hook.save_last and self.is_last_train_epoch(runner))
                return self.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and self.is_last_train_iter(runner))
        return False

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        # Only rank 0 runs before_save_checkpoint, so the ranks exchange
        # their states here, where all of them are, right before the save.
        if dist.get_world_size() > 1 and self._checkpoint_due(runner,
                                                              by_epoch):
            self._gathered = dist.all_gather_object(_capture())

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if dist.get_world_size() == 1:
            states = [_capture()]
        elif self._gathered is not None:
            states = self._gathered
        else:  # e.g. a best-checkpoint save after validation
            return
        checkpoint.setdefault('meta', {})['rng_states'] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('meta', {}).get('rng_states')
        if not states:
            return
        world, rank = dist.get_world_size(), dist.get_rank()
        if len(states) != world:
            runner.logger.warning(
                f'RNG states were saved by {len(states)} ranks, this run has '
                f'{world}; random draws after the resume will differ from '
                'the original run')
            return
        # Python / NumPy now: the data pipeline draws from them when the
        # next batch is loaded. torch at the first iteration: creating the
        # resumed run's dataloader iterator draws one number from torch's
        # generator, which the uninterrupted run did at its start.
        _restore_host(states[rank])
        self._pending_torch_state = states[rank]
        runner.logger.info('Restored RNG states from the checkpoint')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._pending_torch_state is not None:
            _restore_torch(self._pending_torch_state)
            self._pending_torch_state = None
