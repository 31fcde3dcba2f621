from .class_prompt_mapping_hook import ClassPromptMappingHook
from .cls_report_hook import ClsReportHook
from .rng_state_hook import RNGStateHook

__all__ = ['ClassPromptMappingHook', 'ClsReportHook', 'RNGStateHook']
