from .distributed import (CPUDistributedDataParallel, init_cpu_distributed,
                          shutdown_distributed)
from .hooks import (AtomicCheckpointHook, ClassPromptMappingHook,
                    LabelledPixelsHook, RNGStateHook)
from .optimizers import TrainableParamsOptimWrapperConstructor

__all__ = [
    'AtomicCheckpointHook', 'ClassPromptMappingHook',
    'CPUDistributedDataParallel', 'LabelledPixelsHook', 'RNGStateHook',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed',
    'shutdown_distributed'
]
