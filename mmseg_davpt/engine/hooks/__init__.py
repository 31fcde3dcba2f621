from .atomic_checkpoint_hook import AtomicCheckpointHook
from .class_prompt_mapping_hook import ClassPromptMappingHook
from .cls_report_hook import ClsReportHook
from .labelled_pixels_hook import LabelledPixelsHook
from .rng_state_hook import RNGStateHook

__all__ = [
    'AtomicCheckpointHook', 'ClassPromptMappingHook', 'ClsReportHook',
    'LabelledPixelsHook', 'RNGStateHook'
]
