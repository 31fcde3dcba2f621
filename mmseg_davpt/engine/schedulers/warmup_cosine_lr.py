"""Linear warm-up inside one cosine decay: DA-VPT's classification schedule
(paper App. A.2: 10 warm-up epochs, cosine decay to 1e-8, stepped every
iteration in the per-task recipes).

The cosine spans the whole run, warm-up included: after warm-up the
learning rate is the value the cosine started at step 0 would have reached,
not a cosine restarted at the warm-up end. mmengine's ``LinearLR`` followed
by ``CosineAnnealingLR(begin=warmup)`` restarts it, so it is not the same
schedule.
"""
import math
from numbers import Real
from typing import List, Optional, Union

from mmengine.optim import BaseOptimWrapper
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmseg.registry import PARAM_SCHEDULERS
from torch.optim import Optimizer

from ...utils.registry import also_in_mmpretrain


def warmup_cosine_lr(t: float, total: float, warmup: float, lr: float,
                     warmup_lr: float, min_lr: float) -> float:
    """Learning rate at step ``t`` (0-based; the rate step ``t`` trains
    with).

    ``t < warmup``: ``warmup_lr + t * (lr - warmup_lr) / warmup``.
    ``warmup <= t < total``:
    ``min_lr + (lr - min_lr) * (1 + cos(pi * t / total)) / 2``, with ``t``
    counted from 0, not from the warm-up end. ``t >= total``: ``min_lr``.
    """
    if t < warmup:
        return warmup_lr + t * (lr - warmup_lr) / warmup
    if t >= total:
        return min_lr
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t / total))


def _optimizer_lr(optimizer: Union[Optimizer, BaseOptimWrapper]) -> float:
    """The optimizer's configured ``lr`` (``optimizer=dict(lr=...)``), which
    ``lr_mult`` groups are multiples of."""
    inner = getattr(optimizer, 'optimizer', optimizer)
    lr = getattr(inner, 'defaults', {}).get('lr')
    if not isinstance(lr, Real) or lr <= 0:
        raise ValueError(
            'WarmupCosineLR needs the optimizer\'s own positive `lr` '
            f'(optimizer=dict(type=..., lr=...)), got lr={lr!r} from '
            f'{type(inner).__name__}')
    return float(lr)


@also_in_mmpretrain('PARAM_SCHEDULERS')
@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(_ParamScheduler):
    """Linear warm-up from ``warmup_lr``, then cosine decay to ``min_lr``
    over ``epochs`` steps counted from step 0 (:func:`warmup_cosine_lr`).

    ``lr``, ``warmup_lr`` and ``min_lr`` are absolute for a param group with
    the optimizer's own ``lr``; a group with ``lr_mult`` m gets m times that
    rate at every step, so group ratios are kept throughout.

    Units are the scheduler's steps: epochs with ``by_epoch=True`` (the rate
    changes once per epoch); with ``convert_to_iter_based=True``
    (recommended) ``epochs`` and ``warmup_epochs`` are multiplied by the
    epoch length and the rate changes every iteration.

    Args:
        optimizer (Optimizer | BaseOptimWrapper): the wrapped optimizer.
        epochs (float): length of the cosine, warm-up included.
        warmup_epochs (float): linear warm-up length, ``0 <= . < epochs``.
        warmup_lr (float): rate at step 0. Defaults to 0.
        min_lr (float): rate the cosine ends at, and keeps after ``epochs``.
            Defaults to 0.
        begin (int): step at which the schedule starts (its step 0).
        end (int): step after which the rate is no longer changed.
        last_step (int): for resuming without a state dict.
        by_epoch (bool): whether steps are epochs.
        verbose (bool): print the rate at every step.
    """

    def __init__(self,
                 optimizer: Union[Optimizer, BaseOptimWrapper],
                 epochs: float,
                 warmup_epochs: float = 0,
                 warmup_lr: float = 0.,
                 min_lr: float = 0.,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False):
        for name, value in (('epochs', epochs), ('warmup_epochs',
                                                 warmup_epochs),
                            ('warmup_lr', warmup_lr), ('min_lr', min_lr)):
            if not isinstance(value, Real) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f'WarmupCosineLR: `{name}` must be a finite '
                                 f'number >= 0, got {value!r}')
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(
                'WarmupCosineLR: need 0 <= warmup_epochs < epochs, got '
                f'warmup_epochs={warmup_epochs}, epochs={epochs}')
        self.total = epochs
        self.warmup = warmup_epochs
        self.warmup_lr = warmup_lr
        self.min_lr = min_lr
        self.lr = _optimizer_lr(optimizer)
        super().__init__(optimizer, param_name='lr', begin=begin, end=end,
                         last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls,
                              *args,
                              epochs: float,
                              warmup_epochs: float = 0,
                              begin: int = 0,
                              end: int = INF,
                              by_epoch: bool = True,
                              epoch_length: Optional[int] = None,
                              **kwargs) -> 'WarmupCosineLR':
        """The iteration-based schedule of an epoch-based config
        (``convert_to_iter_based=True``): lengths times ``epoch_length``."""
        if not by_epoch:
            raise ValueError('WarmupCosineLR: convert_to_iter_based needs '
                             'by_epoch=True')
        if not isinstance(epoch_length, int) or epoch_length <= 0:
            raise ValueError('WarmupCosineLR: `epoch_length` must be a '
                             f'positive int, got {epoch_length!r}')
        if end != INF:
            end = int(end * epoch_length)
        return cls(
            *args,
            epochs=epochs * epoch_length,
            warmup_epochs=warmup_epochs * epoch_length,
            begin=int(begin * epoch_length),
            end=end,
            by_epoch=False,
            **kwargs)

    def _get_value(self) -> List[float]:
        """Rate of every param group at step ``last_step``."""
        lr = warmup_cosine_lr(self.last_step, self.total, self.warmup,
                              self.lr, self.warmup_lr, self.min_lr)
        # group / optimizer ratio first: exactly 1.0 for the default group
        return [lr * (base / self.lr) for base in self.base_values]
