from .distributed import (CPUDistributedDataParallel, init_cpu_distributed,
                          shutdown_distributed)
from .hooks import AtomicCheckpointHook, ClassPromptMappingHook, RNGStateHook
from .optimizers import TrainableParamsOptimWrapperConstructor

__all__ = [
    'AtomicCheckpointHook', 'ClassPromptMappingHook',
    'CPUDistributedDataParallel', 'RNGStateHook',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed',
    'shutdown_distributed'
]
