"""mmpretrain ImageClassifier with DA-VPT metric guidance on a prompted ViT."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ..davpt_mixin import DAVPTMixin


@MODELS.register_module()
class DAVPTImageClassifier(DAVPTMixin, ImageClassifier):
    """``ImageClassifier`` whose training loss adds DA-VPT's ``L_p`` and
    ``L_cls`` (logged as ``davpt.loss_prompt`` / ``davpt.loss_cls``).

    Prediction, heads, data preprocessing and evaluation are
    ``ImageClassifier``'s. The class -> prompt mapping lives in
    ``metric_guidance.mapping`` (module buffers, saved in checkpoints);
    ``ClassPromptMappingHook(by_epoch=True)`` builds it before training and
    refreshes it after every epoch.

    Args:
        metric_guidance (dict | None): a ``ClsMetricGuidance`` config;
            ``num_classes`` defaults to the head's, the prompt layout comes
            from the backbone (``PromptedVisionTransformer`` with
            ``out_type='cls_token'``). ``None`` gives plain VPT training.
        check_finite_loss (bool): stop with ``FloatingPointError`` naming the
            loss term and iteration when a loss is NaN / infinite (default).
        Other arguments: see ``ImageClassifier``.
    """

    def __init__(self, *args, metric_guidance: Optional[dict] = None,
                 check_finite_loss: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._build_metric_guidance(MODELS, metric_guidance,
                                    check_finite_loss,
                                    num_classes=self.head.num_classes)
        if self.metric_guidance is None:
            return
        if not self.backbone.with_cls_token:
            raise ValueError('classification metric guidance needs the [CLS] '
                             'token: set backbone.with_cls_token=True')
        if getattr(self.data_preprocessor, 'batch_augments', None):
            # Mixup / CutMix blend images and turn labels into scores, so an
            # image no longer has one class to guide a prompt with.
            raise ValueError('metric_guidance needs one label per image; '
                             'remove train_cfg.augments (Mixup / CutMix) or '
                             'set metric_guidance=None')

    @staticmethod
    def _labels(data_samples: List) -> torch.Tensor:
        if not all('gt_label' in s for s in data_samples):
            raise ValueError('DA-VPT classification needs gt_label in every '
                             'data sample')
        return torch.cat([s.gt_label.flatten()[:1] for s in data_samples])

    def loss(self, inputs: torch.Tensor, data_samples: List) -> Dict:
        """Head loss plus the DA-VPT terms; the batch's class features are
        added to the mapping statistics."""
        if self.metric_guidance is None:
            return super().loss(inputs, data_samples)
        # checked first: a bad id otherwise surfaces as an indexing error
        # deep inside the head's cross-entropy
        labels = self.metric_guidance.check_labels(
            self._labels(data_samples).to(inputs.device))
        outs, taps = self.backbone.forward_with_taps(inputs)
        feats = self.neck(outs) if self.with_neck else outs
        losses = self.head.loss(feats, data_samples)
        guidance = self.metric_guidance.loss(taps, labels)
        self.metric_guidance.accumulate(taps, labels)
        losses.update({f'davpt.{k}': v for k, v in guidance.items()})
        return losses

    @torch.no_grad()
    def collect_class_features(self, inputs: torch.Tensor,
                               data_samples: List) -> None:
        """Accumulate per-class [CLS] features of a batch (no gradient, no
        head) for the next mapping refresh."""
        layer = self.metric_guidance.mapping_layer
        _, taps = self.backbone.forward_with_taps(inputs, tap_layers=(layer, ))
        self.metric_guidance.accumulate(
            taps, self.metric_guidance.check_labels(
                self._labels(data_samples).to(inputs.device)))
