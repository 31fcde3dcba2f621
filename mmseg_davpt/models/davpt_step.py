"""The DA-VPT training step, written once for segmentation and
classification: one backbone pass with taps, the task's own losses, the
metric guidance terms, and the class statistics for the mapping."""
from typing import Dict, List

import torch


class DAVPTStepMixin:
    """Mixed into an mmseg / mmpretrain model class (before it in the MRO).

    Expects ``self.backbone`` (a prompted ViT with ``forward_with_taps``) and
    ``self.metric_guidance`` (``None`` for plain VPT training: ``loss`` is
    then the parent's). Subclasses supply what differs between the tasks:

    * ``guidance_targets(inputs, data_samples)``: the labels the guidance
      takes, checked (label maps ``(B, H, W)`` or image labels ``(B,)``);
    * ``task_losses(outs, data_samples)``: the decode / auxiliary head or
      the classification head losses from the backbone outputs;
    * ``guidance_kwargs(data_samples)`` (optional): extra arguments of
      ``metric_guidance.loss``.
    """

    def guidance_targets(self, inputs: torch.Tensor,
                         data_samples: List) -> torch.Tensor:
        raise NotImplementedError

    def task_losses(self, outs: tuple, data_samples: List) -> Dict:
        raise NotImplementedError

    def guidance_kwargs(self, data_samples: List) -> Dict:
        return {}

    def loss(self, inputs: torch.Tensor, data_samples: List) -> Dict:
        """Task losses plus the DA-VPT terms (``davpt.loss_prompt`` /
        ``davpt.loss_cls`` and logged scalars); the batch's class features
        are added to the mapping statistics."""
        if self.metric_guidance is None:
            return super().loss(inputs, data_samples)
        # targets first: a bad label otherwise surfaces as an indexing error
        # deep inside a head's cross-entropy
        targets = self.guidance_targets(inputs, data_samples)
        outs, taps = self.backbone.forward_with_taps(inputs)
        losses = self.task_losses(outs, data_samples)
        guidance = self.metric_guidance.loss(
            taps, targets, **self.guidance_kwargs(data_samples))
        self.metric_guidance.accumulate(taps, targets)
        losses.update({f'davpt.{k}': v for k, v in guidance.items()})
        return losses

    @torch.no_grad()
    def collect_class_features(self, inputs: torch.Tensor,
                               data_samples: List) -> None:
        """Accumulate the class features of a batch (no gradient, no heads,
        one tapped layer) for the next mapping refresh."""
        targets = self.guidance_targets(inputs, data_samples)
        layer = self.metric_guidance.mapping_layer
        _, taps = self.backbone.forward_with_taps(inputs, tap_layers=(layer, ))
        self.metric_guidance.accumulate(taps, targets)
