"""EncoderDecoder with DA-VPT metric guidance on a prompted ViT."""
import zlib
from typing import Dict, List, Optional

import torch
from mmengine.logging import MessageHub
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ..class_mapping_api import ClassMappingMixin
from ..davpt_step import DAVPTStepMixin
from ..guidance.build import build_metric_guidance
from ..utils import FiniteLossMixin, SummaryInitLogMixin
from .slide_progress import SlideProgressMixin


@MODELS.register_module()
class DAVPTEncoderDecoder(SlideProgressMixin, DAVPTStepMixin,
                          ClassMappingMixin, FiniteLossMixin,
                          SummaryInitLogMixin, EncoderDecoder):
    """``EncoderDecoder`` whose training loss adds DA-VPT's ``L_p`` and
    ``L_cls`` (logged as ``davpt.loss_prompt`` / ``davpt.loss_cls``).

    Inference (whole / slide, TTA, visualisation) is ``EncoderDecoder``'s.
    The class -> prompt mapping lives in ``metric_guidance.mapping`` (module
    buffers, so checkpoints carry it); ``ClassPromptMappingHook`` fills and
    refreshes it through ``collect_class_features`` and
    ``refresh_class_mapping``.

    Args:
        metric_guidance (dict | None): a ``SegMetricGuidance`` config;
            ``num_classes`` and ``ignore_index`` default to the decode head's,
            ``embed_dims`` / ``guided_layers`` / ``num_guided_prompts`` come
            from the backbone. ``None`` gives plain VPT training.
        check_finite_loss (bool): stop training with ``FloatingPointError``
            naming the loss term and the iteration as soon as a loss term is
            NaN or infinite, before the optimizer step (default). ``False``
            leaves non-finite losses to the optimizer wrapper (e.g. AMP's
            loss scaler, which skips steps with non-finite gradients).
        Other arguments: see ``EncoderDecoder``.
    """

    def __init__(self, *args, metric_guidance: Optional[dict] = None,
                 check_finite_loss: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.check_finite_loss = check_finite_loss
        self.metric_guidance = build_metric_guidance(
            MODELS, metric_guidance, self.backbone,
            num_classes=self.decode_head.num_classes,
            ignore_index=self.decode_head.ignore_index)

    @torch.compiler.disable
    def guidance_kwargs(self, data_samples: List) -> Dict:
        """Per-image seeds ``(B,)`` int64 for the class draw from the image
        path and the iteration, so the draw does not depend on how images
        are spread over ranks. ``None`` (global RNG) for samples without a
        path. A tensor, not ints: ``torch.compile`` would specialise on
        the ints and recompile every iteration."""
        paths = [s.metainfo.get('img_path') for s in data_samples]
        if not all(paths):
            return dict(seeds=None)
        it = MessageHub.get_current_instance().get_info('iter') or 0
        return dict(seeds=torch.tensor(
            [(zlib.crc32(p.encode()) + 1_000_003 * it) % 2**63
             for p in paths], dtype=torch.long))

    def guidance_targets(self, inputs: torch.Tensor,
                         data_samples: List) -> torch.Tensor:
        """Label maps ``(B, H, W)``; ``SegMetricGuidance`` checks the ids."""
        return torch.stack([s.gt_sem_seg.data[0] for s in data_samples])

    def task_losses(self, outs: tuple, data_samples: List) -> Dict:
        """Decode (and auxiliary) head losses."""
        x = self.neck(outs) if self.with_neck else outs
        # each head's losses are bound before merging: torch.compile breaks
        # the graph inside the heads, and a pending ``losses.update`` (a
        # new bound method every step) would then recompile every iteration
        losses = self._decode_head_forward_train(x, data_samples)
        if self.with_auxiliary_head:
            aux = self._auxiliary_head_forward_train(x, data_samples)
            losses.update(aux)
        return losses
