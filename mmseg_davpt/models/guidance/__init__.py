from .class_prompt_mapping import UNASSIGNED, ClassPromptMapping
from .seg_metric_guidance import SegMetricGuidance

__all__ = ['ClassPromptMapping', 'SegMetricGuidance', 'UNASSIGNED']
