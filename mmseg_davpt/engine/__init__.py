from .distributed import (CPUDistributedDataParallel, init_cpu_distributed,
                          shutdown_distributed)
from .hooks import ClassPromptMappingHook, ClsReportHook, RNGStateHook
from .optimizers import TrainableParamsOptimWrapperConstructor

__all__ = [
    'ClassPromptMappingHook', 'ClsReportHook', 'CPUDistributedDataParallel',
    'RNGStateHook',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed',
    'shutdown_distributed'
]
