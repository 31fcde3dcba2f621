from .distributed import (CPUDistributedDataParallel, init_cpu_distributed,
                          shutdown_distributed)
from .hooks import ClassPromptMappingHook, RNGStateHook
from .optimizers import TrainableParamsOptimWrapperConstructor
from . import schedulers  # noqa: F401  (registers WarmupCosineLR)

__all__ = [
    'ClassPromptMappingHook', 'CPUDistributedDataParallel', 'RNGStateHook',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed',
    'shutdown_distributed'
]
