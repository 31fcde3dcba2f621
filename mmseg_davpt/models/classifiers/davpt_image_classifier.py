"""mmpretrain ImageClassifier with DA-VPT metric guidance on a prompted ViT."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ..class_mapping_api import ClassMappingMixin
from ..davpt_step import DAVPTStepMixin
from ..guidance.build import build_metric_guidance
from ..utils import FiniteLossMixin, SummaryInitLogMixin


@MODELS.register_module()
class DAVPTImageClassifier(DAVPTStepMixin, ClassMappingMixin,
                           FiniteLossMixin, SummaryInitLogMixin,
                           ImageClassifier):
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
        self.check_finite_loss = check_finite_loss
        self.metric_guidance = build_metric_guidance(
            MODELS, metric_guidance, self.backbone,
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

    def guidance_targets(self, inputs: torch.Tensor,
                         data_samples: List) -> torch.Tensor:
        """Image labels ``(B,)`` on the inputs' device, checked once per
        step (``ClsMetricGuidance.check_labels``)."""
        if not all('gt_label' in s for s in data_samples):
            raise ValueError('DA-VPT classification needs gt_label in every '
                             'data sample')
        labels = torch.cat([s.gt_label.flatten()[:1] for s in data_samples])
        return self.metric_guidance.check_labels(labels.to(inputs.device))

    def task_losses(self, outs: tuple, data_samples: List) -> Dict:
        """The classification head's loss."""
        feats = self.neck(outs) if self.with_neck else outs
        return self.head.loss(feats, data_samples)
