"""DA-VPT metric guidance for image classification (paper Sec. 3.2-3.4;
``docs/method.md`` sections 2-3 and 5)."""
from typing import Dict, Tuple

import torch
from mmseg.registry import MODELS

from ...utils.registry import also_in_mmpretrain
from ..backbones.layer_taps import LayerTaps
from .metric_guidance import MetricGuidance


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class ClsMetricGuidance(MetricGuidance):
    """Metric losses between guided prompts, visual tokens and [CLS],
    labelled by the image label.

    Every image is a sample of its class: its visual tokens are the
    positives of the class's prompt in ``L_p`` (Eq. 4) and its [CLS] token
    in ``L_cls``. Class representations for the k-means mapping are the
    [CLS] vectors of the deepest guided layer (the paper mean-pools [CLS] per
    class, Sec. 3.4), in the space the loss compares.

    With fewer classes than guided prompts every class gets a prompt of its
    own and the remaining prompts stay unassigned and unguided (paper
    App. A.3: "extra unassigned prompts").

    Args:
        num_classes: classes ``C`` (filled in from the head).
        pooling: ``'tokens'`` (default: every patch token of an image is a
            sample, Eq. 4 as written) or ``'image_mean'`` (one sample per
            image: the mean of its patch tokens, as the released code does).
        **kwargs: ``MetricGuidance`` arguments (``embed_dims``,
            ``guided_layers``, ``num_guided_prompts``, ``loss_prompt``,
            ``loss_cls``, ``feature``, ``token_source``, ``cls_source``,
            ``kmeans_seed``,
            ``gather_across_ranks``).
    """

    POOLINGS = ('tokens', 'image_mean')

    def __init__(self, num_classes: int, pooling: str = 'tokens', **kwargs):
        super().__init__(num_classes=num_classes, pooling=pooling, **kwargs)

    def check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Image labels ``(B,)`` as int64, or a ``ValueError`` naming the
        first id outside ``[0, C)``."""
        labels = labels.long().flatten()
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ValueError(
                f'image label {labels[bad][0].item()} is outside [0, '
                f'{self.num_classes}); check num_classes of the head and the '
                'dataset split files')
        return labels

    def image_targets(self, taps: Dict[int, LayerTaps],
                      labels: torch.Tensor) -> Tuple[torch.Tensor, None]:
        """The image labels ``(B,)`` (as returned by ``check_labels``);
        every patch token is a sample."""
        return labels, None

    @torch.no_grad()
    def accumulate(self, taps: Dict[int, LayerTaps],
                   labels: torch.Tensor) -> None:
        """Add the [CLS] vectors of ``mapping_layer`` (``token_features``,
        unprojected) to the per-class sums of ``labels`` ``(B,)`` (as
        returned by ``check_labels``). ``W_q`` is linear, so
        ``refresh_mapping`` applies it to the class means."""
        tap = taps[self.mapping_layer]
        self.mapping.accumulate(tap.cls_token(self.token_features(tap)),
                                labels)
