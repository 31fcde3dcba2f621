from .class_prompt_mapping import ClassPromptMapping
from .cls_metric_guidance import ClsMetricGuidance
from .metric_guidance import MetricGuidance
from .seg_metric_guidance import SegMetricGuidance
from .sentinels import NO_CLASS, NO_PROMPT

__all__ = [
    'ClassPromptMapping', 'ClsMetricGuidance', 'MetricGuidance', 'NO_CLASS',
    'NO_PROMPT', 'SegMetricGuidance'
]
