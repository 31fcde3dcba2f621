"""Optimizer constructor that hands the optimizer trainable parameters only."""
import logging
import math
from numbers import Real

import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ...utils.model import unwrap_model
from ...utils.registry import also_in_mmpretrain


class _DropFrozenNotices(logging.Filter):
    """mmengine logs one warning per frozen tensor (hundreds for ViT-L);
    the constructor prints one summary line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return 'is skipped since its requires_grad=False' not in \
            record.getMessage()


@also_in_mmpretrain('OPTIM_WRAPPER_CONSTRUCTORS')
@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableParamsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` that never passes frozen parameters.

    mmengine's default passes ``model.parameters()`` (frozen ones included)
    when no ``paramwise_cfg`` is given. With prompt tuning ~96% of the
    weights are frozen: they must not enter the optimizer, whose state or
    weight decay could otherwise touch them. ``paramwise_cfg`` (``custom_keys``,
    ``lr_mult``...) works as usual on the trainable parameters.

    A ``custom_keys`` entry may give an absolute ``weight_decay`` instead of
    a ``decay_mult``, so a rate can be set where the optimizer's is 0. As in
    mmengine, the first (longest) key contained in a parameter's name decides
    its group and overrides ``flat_decay_mult``: name the tensor exactly.
    DA-VPT's per-task recipes (AdamW, paper App. A.2): no decay for biases
    and other 1-D tensors, ``WD_HEAD`` for the classifier weight, ``WD`` for
    the rest (prompts, [CLS] token)::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='TrainableParamsOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
            paramwise_cfg=dict(
                flat_decay_mult=0.0,
                custom_keys={'head.fc.weight': dict(weight_decay=WD_HEAD)}))

    Errors: a ``custom_keys`` key that is in no parameter name of the model
    (a typo would silently leave the rule unapplied), a ``weight_decay``
    that is not a finite number >= 0, or one given together with
    ``decay_mult``.
    """

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        for key, rule in self.paramwise_cfg.get('custom_keys', {}).items():
            if 'weight_decay' not in rule:
                continue
            wd = rule['weight_decay']
            if not isinstance(wd, Real) or isinstance(wd, bool) \
                    or not math.isfinite(wd) or wd < 0:
                raise ValueError(
                    f'paramwise_cfg.custom_keys[{key!r}].weight_decay must be '
                    f'a finite number >= 0, got {wd!r}')
            if 'decay_mult' in rule:
                raise ValueError(
                    f'paramwise_cfg.custom_keys[{key!r}] gives both '
                    '`weight_decay` (absolute) and `decay_mult` (relative); '
                    'keep one')

    def _check_keys_match(self, module: nn.Module) -> None:
        """Every ``custom_keys`` key must occur in some parameter name,
        spelled as mmengine matches it (``.name`` for top-level tensors)."""
        names = [n if '.' in n else f'.{n}'
                 for n, _ in module.named_parameters()]
        unmatched = [key for key in self.paramwise_cfg.get('custom_keys', {})
                     if not any(key in n for n in names)]
        if unmatched:
            sample = [n.lstrip('.') for n in names[:2] + names[-2:]]
            raise ValueError(
                f'paramwise_cfg.custom_keys {unmatched} match no parameter of '
                f'{type(module).__name__}; its parameter names look like '
                f'{sample}')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        module = unwrap_model(model)
        trainable = [p for p in module.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError('the model has no trainable parameters; check '
                             '`freeze_pretrained` / `num_prompts` in the backbone config')
        self._check_keys_match(module)
        if not self.paramwise_cfg:
            # An empty rule set routes construction through ``add_params``,
            # which skips parameters with ``requires_grad=False``.
            self.paramwise_cfg = dict(custom_keys={})
        logger = MMLogger.get_current_instance()
        notice_filter = _DropFrozenNotices()
        logger.addFilter(notice_filter)
        try:
            optim_wrapper = super().__call__(model)
        finally:
            logger.removeFilter(notice_filter)

        # mmengine hands the optimizer ConfigDict groups; torch.compile
        # (``compile=True``) cannot trace an optimizer step over them
        groups = optim_wrapper.optimizer.param_groups
        groups[:] = [dict(group) for group in groups]
        in_optimizer = {
            id(p)
            for group in optim_wrapper.optimizer.param_groups
            for p in group['params']
        }
        frozen = [p for p in module.parameters() if not p.requires_grad]
        if len(in_optimizer) != len(trainable):
            raise RuntimeError(
                f'optimizer received {len(in_optimizer)} tensors but the '
                f'model has {len(trainable)} trainable ones')
        print_log(
            f'Optimizer gets {len(trainable)} trainable tensors '
            f'({sum(p.numel() for p in trainable) / 1e6:.3f}M parameters); '
            f'{len(frozen)} frozen tensors '
            f'({sum(p.numel() for p in frozen) / 1e6:.3f}M) are left out.',
            logger='current')
        return optim_wrapper
