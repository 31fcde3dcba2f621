from .class_prompt_mapping import UNASSIGNED, ClassPromptMapping
from .cls_metric_guidance import ClsMetricGuidance
from .metric_guidance import MetricGuidance
from .seg_metric_guidance import SegMetricGuidance

__all__ = [
    'ClassPromptMapping', 'ClsMetricGuidance', 'MetricGuidance',
    'SegMetricGuidance', 'UNASSIGNED'
]
