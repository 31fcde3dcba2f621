"""Optimizer constructor that hands the optimizer trainable parameters only."""
import logging

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
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        module = unwrap_model(model)
        trainable = [p for p in module.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError('the model has no trainable parameters; check '
                             '`freeze_pretrained` / `num_prompts` in the backbone config')
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
