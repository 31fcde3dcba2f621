from .backbones import PromptedVisionTransformer
from .data_preprocessors import FiniteSegDataPreProcessor
from .guidance import (ClassPromptMapping, ClsMetricGuidance,
                       SegMetricGuidance)
from .losses import (ProxyAnchorLoss, ProxyNCALoss, ProxyTripletLoss,
                     proxy_anchor_loss)
from .segmentors import DAVPTEncoderDecoder

__all__ = [
    'PromptedVisionTransformer', 'FiniteSegDataPreProcessor',
    'ClassPromptMapping', 'ClsMetricGuidance', 'SegMetricGuidance',
    'DAVPTEncoderDecoder', 'ProxyAnchorLoss', 'ProxyNCALoss',
    'ProxyTripletLoss', 'proxy_anchor_loss'
]

try:  # classification needs mmpretrain; segmentation does not
    import mmpretrain  # noqa: F401
except ImportError:
    pass
else:
    from .classifiers import DAVPTImageClassifier  # noqa: F401
    __all__.append('DAVPTImageClassifier')
