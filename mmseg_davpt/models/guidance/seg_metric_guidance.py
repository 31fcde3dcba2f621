"""DA-VPT metric guidance for semantic segmentation (paper Sec. 3.2-3.4;
``docs/method.md`` sections 2-4)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from ..backbones.layer_taps import LayerTaps
from .metric_guidance import MetricGuidance
from .sentinels import NO_CLASS


@MODELS.register_module()
class SegMetricGuidance(MetricGuidance):
    """Proxy-Anchor losses between guided prompts, visual tokens and [CLS].

    Per image and per iteration one non-background class present in the
    label map (at patch resolution) is drawn; that image's tokens of the
    class are samples labelled with the class's prompt (``L_p``), and so is
    its [CLS] token (``L_cls``). Prompts of the guided layer are the proxies.

    Compared vectors, proxies and the common arguments: see
    ``MetricGuidance``.

    Args:
        num_classes: segmentation classes ``C``.
        pooling: ``'class_masked'`` (default: the class's tokens, Eq. 4) or
            ``'image_mean'`` (one sample per image: the mean of all its patch
            tokens, as the released code does).
        background_classes: class ids never drawn as targets (e.g. a
            'background' class that is not reduced to the ignore index).
        ignore_index: label of ignored pixels (255 in MMSegmentation).
        **kwargs: ``MetricGuidance`` arguments (``embed_dims``,
            ``guided_layers``, ``num_guided_prompts``, ``loss_prompt``,
            ``loss_cls``, ``feature``, ``token_source``, ``cls_source``,
            ``kmeans_seed``,
            ``gather_across_ranks``).
    """

    POOLINGS = ('class_masked', 'image_mean')

    def __init__(self,
                 num_classes: int,
                 pooling: str = 'class_masked',
                 background_classes: Sequence[int] = (),
                 ignore_index: int = 255,
                 **kwargs):
        super().__init__(num_classes=num_classes, pooling=pooling, **kwargs)
        bad = [c for c in background_classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f'background_classes {bad} are not class ids '
                             f'in [0, {num_classes})')
        if len(set(background_classes)) >= num_classes:
            raise ValueError('every class is a background class; no class '
                             'is left to guide the prompts')
        self.ignore_index = ignore_index
        self.register_buffer(
            'is_background',
            F.one_hot(torch.tensor(list(background_classes), dtype=torch.long),
                      num_classes).sum(0).bool()
            if background_classes else torch.zeros(num_classes,
                                                   dtype=torch.bool),
            persistent=False)

    # ------------------------------------------------------------ labels
    def patch_labels(self, gt: torch.Tensor, grid: Tuple[int, int],
                     patch_size: int) -> torch.Tensor:
        """Label map ``(B, H, W)`` -> patch labels ``(B, h*w)``: the label at
        each patch centre (nearest resize); ``NO_CLASS`` for ignore, background,
        and patches whose centre lies in the patch embedding's padding
        (inputs that are not a multiple of the patch size).
        """
        B, H, W = gt.shape
        h, w = grid
        rows = torch.arange(h, device=gt.device) * patch_size + patch_size // 2
        cols = torch.arange(w, device=gt.device) * patch_size + patch_size // 2
        labels = gt[:, rows.clamp(max=H - 1)][:, :, cols.clamp(max=W - 1)]
        inside = (rows < H)[:, None] & (cols < W)[None, :]
        labels = torch.where(inside, labels, self.ignore_index)
        labels = labels.reshape(B, h * w).long()
        valid = labels != self.ignore_index
        too_big = valid & ((labels >= self.num_classes) | (labels < 0))
        if too_big.any():
            raise ValueError(
                f'label map holds class id {labels[too_big][0].item()} '
                f'outside [0, {self.num_classes}) and not the ignore index '
                f'{self.ignore_index}; check num_classes / reduce_zero_label')
        labels = torch.where(valid, labels, NO_CLASS)
        bg = self.is_background[labels.clamp(min=0)] & valid
        return torch.where(bg, NO_CLASS, labels)

    @torch.compiler.disable  # a per-image loop with its own generator
    def sample_targets(self, labels: torch.Tensor,
                       seeds: Optional[Sequence[int]] = None) -> torch.Tensor:
        """One class per image drawn uniformly from those present in
        ``labels`` ``(B, L)``; ``(B,)`` with ``-1`` where none is present.

        ``seeds`` (one int per image, or a ``(B,)`` int tensor) make each
        draw a function of the image and the iteration only, not of the
        rank layout: a run on N ranks then draws what a single-process run
        with the same global batch draws.
        Without seeds, torch's global generator is used.
        """
        B = labels.shape[0]
        present = torch.zeros(B, self.num_classes + 1, device=labels.device)
        present.scatter_(1, labels + 1, 1.)  # column 0 collects NO_CLASS
        present = present[:, 1:]
        has_any = present.sum(1) > 0
        if seeds is None:
            weights = torch.where(has_any[:, None], present,
                                  torch.ones_like(present))
            target = torch.multinomial(weights, 1).flatten()
            return torch.where(has_any, target, NO_CLASS)
        target = torch.full((B, ), NO_CLASS, dtype=torch.long)
        generator = torch.Generator()
        for b, row in enumerate(present.cpu()):
            classes = torch.nonzero(row).flatten()
            if len(classes):
                generator.manual_seed(int(seeds[b]))
                pick = torch.randint(len(classes), (1, ), generator=generator)
                target[b] = classes[pick]
        return target.to(labels.device)

    # ------------------------------------------------------------ targets
    def image_targets(self, taps: Dict[int, LayerTaps], gt: torch.Tensor,
                      seeds: Optional[Sequence[int]] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One drawn class per image ``(B,)`` and its tokens ``(B, L)``.

        Args:
            taps: guided-layer taps (for the patch grid and size).
            gt: label maps ``(B, H, W)`` at input resolution.
            seeds: per-image seeds for the class draw (``sample_targets``).
        """
        labels = self._patch_labels_of(taps, gt)
        target = self.sample_targets(labels, seeds)
        return target, labels == target[:, None]

    def _patch_labels_of(self, taps: Dict[int, LayerTaps],
                         gt: torch.Tensor) -> torch.Tensor:
        tap = taps[self.mapping_layer]
        return self.patch_labels(gt, tap.grid, tap.patch_size)

    @torch.no_grad()
    def accumulate(self, taps: Dict[int, LayerTaps],
                   gt: torch.Tensor) -> None:
        """Add the patch features of ``mapping_layer`` (``token_features``,
        unprojected) to the per-class sums of their patch labels (from the
        label maps ``gt`` ``(B, H, W)``). ``W_q`` is linear, so
        ``refresh_mapping`` applies it to the class means."""
        labels = self._patch_labels_of(taps, gt)
        tap = taps[self.mapping_layer]
        patches = tap.patch_tokens(self.token_features(tap))
        valid = labels != NO_CLASS
        self.mapping.accumulate(patches[valid], labels[valid])
