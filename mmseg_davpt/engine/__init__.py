from .distributed import (CPUDistributedDataParallel, init_cpu_distributed,
                          shutdown_distributed)
from .hooks import (AtomicCheckpointHook, ClassPromptMappingHook,
                    ClsReportHook, LabelledPixelsHook, RNGStateHook)
from .optimizers import TrainableParamsOptimWrapperConstructor
from . import schedulers  # noqa: F401  (registers WarmupCosineLR)

__all__ = [
    'AtomicCheckpointHook', 'ClassPromptMappingHook', 'ClsReportHook',
    'CPUDistributedDataParallel', 'LabelledPixelsHook', 'RNGStateHook',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed',
    'shutdown_distributed'
]
