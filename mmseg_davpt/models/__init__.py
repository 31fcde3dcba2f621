from .backbones import PromptedVisionTransformer
from .guidance import ClassPromptMapping, SegMetricGuidance
from .losses import proxy_anchor_loss
from .segmentors import DAVPTEncoderDecoder

__all__ = [
    'PromptedVisionTransformer', 'ClassPromptMapping', 'SegMetricGuidance',
    'DAVPTEncoderDecoder', 'proxy_anchor_loss'
]
