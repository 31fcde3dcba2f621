"""DA-VPT metric guidance for semantic segmentation (METHOD.md sections 2-3)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from ..backbones.layer_taps import LayerTaps
from .metric_guidance import NO_CLASS, MetricGuidance


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
            tokens, as the reference code does).
        background_classes: class ids never drawn as targets (e.g. a
            'background' class that is not reduced to the ignore index).
        ignore_index: label of ignored pixels (255 in MMSegmentation).
        **kwargs: ``MetricGuidance`` arguments (``embed_dims``,
            ``guided_layers``, ``num_guided_prompts``, ``prompt_loss_weight``
            ``beta``, ``cls_loss_weight`` ``lambda``, ``margin``, ``alpha``,
            ``feature``, ``kmeans_seed``, ``gather_across_ranks``).
    """

    def __init__(self,
                 num_classes: int,
                 pooling: str = 'class_masked',
                 background_classes: Sequence[int] = (),
                 ignore_index: int = 255,
                 **kwargs):
        super().__init__(num_classes=num_classes, **kwargs)
        if pooling not in ('class_masked', 'image_mean'):
            raise ValueError("pooling must be 'class_masked' or "
                             f"'image_mean', got {pooling!r}")
        bad = [c for c in background_classes if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f'background_classes {bad} are not class ids '
                             f'in [0, {num_classes})')
        if len(set(background_classes)) >= num_classes:
            raise ValueError('every class is a background class; no class '
                             'is left to guide the prompts')
        self.pooling = pooling
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
        each patch centre (nearest resize); ``-1`` for ignore, background,
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

    def sample_targets(self, labels: torch.Tensor,
                       seeds: Optional[Sequence[int]] = None) -> torch.Tensor:
        """One class per image drawn uniformly from those present in
        ``labels`` ``(B, L)``; ``(B,)`` with ``-1`` where none is present.

        ``seeds`` (one int per image) make each draw a function of the image
        and the iteration only, not of the rank layout: a run on N ranks then
        draws what a single-process run with the same global batch draws.
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

    # ------------------------------------------------------------ losses
    def loss(self,
             backbone: nn.Module,
             taps: Dict[int, LayerTaps],
             gt: torch.Tensor,
             grid: Tuple[int, int],
             seeds: Optional[Sequence[int]] = None
             ) -> Dict[str, torch.Tensor]:
        """DA-VPT losses for one batch.

        Args:
            backbone: the ``PromptedVisionTransformer`` (prompts, ``W_q``).
            taps: ``forward_with_taps`` output for the guided layers.
            gt: label maps ``(B, H, W)`` at input resolution.
            grid: patch grid ``(h, w)``.
            seeds: per-image seeds for the class draw (``sample_targets``).
        Returns:
            ``loss_prompt`` (``beta * L_p``) and, with a [CLS] token,
            ``loss_cls`` (``lambda * L_cls``), averaged over guided layers;
            zero (not NaN) when no image has a usable class. Also the
            logged scalars ``img_frac`` (images that contributed) and
            ``unassigned_prompts``.
        """
        self._check_initialized()
        labels = self.patch_labels(gt, grid, backbone.patch_size)
        target = self.sample_targets(labels, seeds)
        prompt_of_target = torch.where(
            target >= 0, self.mapping.lookup(target.clamp(min=0)), NO_CLASS)
        use = prompt_of_target >= 0  # images that contribute
        self.accumulate(taps, labels)

        losses = dict(loss_prompt=0., loss_cls=0.)
        assigned, position = self._assigned_prompts()
        with torch.autocast(gt.device.type, enabled=False):
            self._layer_losses(backbone, taps, labels, target,
                               prompt_of_target, use, assigned, position,
                               losses)
        return self._weighted(losses, taps[self.guided_layers[0]].num_prefix
                              > 0, use, assigned)

    def _layer_losses(self, backbone, taps, labels, target, prompt_of_target,
                      use, assigned, position, losses) -> None:
        """Add each guided layer's ``L_p`` and ``L_cls`` into ``losses``."""
        # which tokens are samples (and their labels) is the same in every
        # guided layer
        if self.pooling == 'class_masked':
            mask = (labels == target[:, None]) & use[:, None]
            sample_labels = prompt_of_target[:, None].expand_as(labels)[mask]
        else:
            sample_labels = prompt_of_target[use]
        for layer in self.guided_layers:
            cls, patches = self._split_tokens(taps[layer])
            samples = patches[mask] if self.pooling == 'class_masked' else \
                patches.mean(1)[use]
            proxies = self._proxies(backbone, layer, assigned)
            losses['loss_prompt'] = losses['loss_prompt'] + self._proxy_loss(
                backbone, layer, samples, sample_labels, proxies, position)
            if cls is not None:
                losses['loss_cls'] = losses['loss_cls'] + self._proxy_loss(
                    backbone, layer, cls[use], prompt_of_target[use],
                    proxies, position)

    # ------------------------------------------------------------ mapping
    @torch.no_grad()
    def accumulate(self, taps: Dict[int, LayerTaps],
                   labels: torch.Tensor) -> None:
        """Add the raw patch features of the deepest guided layer to the
        per-class sums (``labels`` ``(B, L)`` from ``patch_labels``). Raw
        features suffice: ``W_q`` is linear, so it is applied to the class
        means at refresh time."""
        _, patches = self._split_tokens(taps[max(self.guided_layers)])
        valid = labels >= 0
        self.mapping.accumulate(patches[valid], labels[valid])
