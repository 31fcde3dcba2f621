from .hooks import ClassPromptMappingHook
from .optimizers import TrainableParamsOptimWrapperConstructor

__all__ = ['ClassPromptMappingHook', 'TrainableParamsOptimWrapperConstructor']
