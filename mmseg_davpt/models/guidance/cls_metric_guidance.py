"""DA-VPT metric guidance for image classification (paper Sec. 3, METHOD.md
sections 2-3 and 5)."""
from typing import Dict

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from ...utils.registry import also_in_mmpretrain
from ..backbones.layer_taps import LayerTaps
from .metric_guidance import NO_CLASS, MetricGuidance


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class ClsMetricGuidance(MetricGuidance):
    """Proxy-Anchor losses between guided prompts, visual tokens and [CLS],
    labelled by the image label.

    Every image is a sample of its class: its visual tokens are the
    positives of the class's prompt in ``L_p`` (Eq. 4) and its [CLS] token
    in ``L_cls``. Class representations for the k-means mapping are the
    [CLS] vectors of the deepest guided layer (the paper mean-pools [CLS] per
    class), in the space the loss compares.

    With fewer classes than guided prompts every class gets a prompt of its
    own and the remaining prompts stay unassigned and unguided (paper
    App. A.3: "extra unassigned prompts").

    Args:
        num_classes: classes ``C`` (filled in from the head).
        pooling: ``'tokens'`` (default: every patch token of an image is a
            sample, Eq. 4 as written) or ``'image_mean'`` (one sample per
            image: the mean of its patch tokens, as the reference code does).
        **kwargs: ``MetricGuidance`` arguments (``embed_dims``,
            ``guided_layers``, ``num_guided_prompts``, ``prompt_loss_weight``
            ``beta``, ``cls_loss_weight`` ``lambda``, ``margin``, ``alpha``,
            ``feature``, ``kmeans_seed``, ``gather_across_ranks``).
    """

    def __init__(self, num_classes: int, pooling: str = 'tokens', **kwargs):
        super().__init__(num_classes=num_classes, **kwargs)
        if pooling not in ('tokens', 'image_mean'):
            raise ValueError("pooling must be 'tokens' or 'image_mean', got "
                             f'{pooling!r}')
        self.pooling = pooling

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

    def loss(self, backbone: nn.Module, taps: Dict[int, LayerTaps],
             labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """DA-VPT losses for one batch.

        Args:
            backbone: the ``PromptedVisionTransformer``.
            taps: ``forward_with_taps`` output for the guided layers.
            labels: image labels ``(B,)``.
        Returns:
            ``loss_prompt`` (``beta * L_p``), ``loss_cls`` (``lambda *
            L_cls``), averaged over guided layers, and the logged scalars
            ``img_frac`` (images whose class has a prompt) and
            ``unassigned_prompts``.
        """
        self._check_initialized()
        labels = self.check_labels(labels)
        prompt_of = self.mapping.lookup(labels)
        use = prompt_of != NO_CLASS
        self.accumulate(taps, labels)
        losses = dict(loss_prompt=0., loss_cls=0.)
        assigned, position = self._assigned_prompts()
        with torch.autocast(labels.device.type, enabled=False):
            for layer in self.guided_layers:
                cls, patches = self._split_tokens(taps[layer])
                if self.pooling == 'tokens':
                    samples = patches[use].flatten(0, 1)
                    sample_labels = prompt_of[use].repeat_interleave(
                        patches.shape[1])
                else:
                    samples = patches[use].mean(1)
                    sample_labels = prompt_of[use]
                proxies = self._proxies(backbone, layer, assigned)
                losses['loss_prompt'] = losses['loss_prompt'] + \
                    self._proxy_loss(backbone, layer, samples, sample_labels,
                                     proxies, position)
                losses['loss_cls'] = losses['loss_cls'] + self._proxy_loss(
                    backbone, layer, cls[use], prompt_of[use], proxies,
                    position)
        return self._weighted(losses, True, use, assigned)

    @torch.no_grad()
    def accumulate(self, taps: Dict[int, LayerTaps],
                   labels: torch.Tensor) -> None:
        """Add the raw [CLS] vectors of the deepest guided layer to the
        per-class sums of ``labels`` ``(B,)``, valid ids (``check_labels``).
        ``W_q`` is linear, so it is applied to the class means at refresh
        time."""
        cls, _ = self._split_tokens(taps[max(self.guided_layers)])
        self.mapping.accumulate(cls, labels)
