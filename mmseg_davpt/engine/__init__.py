from .distributed import CPUDistributedDataParallel, init_cpu_distributed
from .hooks import ClassPromptMappingHook
from .optimizers import TrainableParamsOptimWrapperConstructor

__all__ = [
    'ClassPromptMappingHook', 'CPUDistributedDataParallel',
    'TrainableParamsOptimWrapperConstructor', 'init_cpu_distributed'
]
