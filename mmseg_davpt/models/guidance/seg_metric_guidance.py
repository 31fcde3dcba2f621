"""DA-VPT metric guidance for semantic segmentation (METHOD.md sections 2-3)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.distributed.nn
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmseg.registry import MODELS

from ..backbones.prompted_attention import AttentionTaps
from ..losses import proxy_anchor_loss
from .class_prompt_mapping import ClassPromptMapping

NO_CLASS = -1


@MODELS.register_module()
class SegMetricGuidance(nn.Module):
    """Proxy-Anchor losses between guided prompts, visual tokens and [CLS].

    Per image and per iteration one non-background class present in the
    label map (at patch resolution) is drawn; that image's tokens of the
    class are samples labelled with the class's prompt (``L_p``), and so is
    its [CLS] token (``L_cls``). Prompts of the guided layer are the proxies.

    Vectors compared (``x`` and ``p``): the attention output before the
    output projection at the token positions (a saliency aggregate that needs
    no attention map), and the prompt tokens. With ``feature='query'`` both
    go through the layer's query weight ``W_q`` (no bias, as the paper's
    ``W_q p``, ``W_q x``); ``'raw'`` compares them as they are.

    Args:
        num_classes: segmentation classes ``C``.
        embed_dims, guided_layers, num_guided_prompts: from the backbone
            (filled in by the segmentor).
        prompt_loss_weight: ``beta`` (paper: 0.05).
        cls_loss_weight: ``lambda`` (paper: 0.05).
        margin, alpha: Proxy-Anchor ``delta`` (0.1) and ``alpha`` (32).
        feature: ``'query'`` (default, paper's better choice) or ``'raw'``.
        pooling: ``'class_masked'`` (default: the class's tokens, Eq. 4) or
            ``'image_mean'`` (one sample per image: the mean of all its patch
            tokens, as the reference code does).
        background_classes: class ids never drawn as targets (e.g. a
            'background' class that is not reduced to the ignore index).
        ignore_index: label of ignored pixels (255 in MMSegmentation).
        kmeans_seed: random state of the class -> prompt k-means.
        gather_across_ranks: compute the loss over the samples of all ranks
            (autograd-aware all_gather), so negatives come from the global
            batch, as in a single-process run with the same global batch.
            Off: each rank uses its own images only (2 per GPU in the paper's
            setting), cheaper and what the reference code does.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 guided_layers: Sequence[int],
                 num_guided_prompts: int,
                 prompt_loss_weight: float = 0.05,
                 cls_loss_weight: float = 0.05,
                 margin: float = 0.1,
                 alpha: float = 32.0,
                 feature: str = 'query',
                 pooling: str = 'class_masked',
                 background_classes: Sequence[int] = (),
                 ignore_index: int = 255,
                 kmeans_seed: int = 0,
                 gather_across_ranks: bool = False):
        super().__init__()
        if not guided_layers:
            raise ValueError(
                'metric guidance needs guided layers: set the backbone\'s '
                '`guided_layers` (paper: the last layer, e.g. (23,) for '
                'ViT-L)')
        if feature not in ('query', 'raw'):
            raise ValueError(f"feature must be 'query' or 'raw', got "
                             f'{feature!r}')
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
        self.num_classes = num_classes
        self.guided_layers = tuple(guided_layers)
        self.prompt_loss_weight = prompt_loss_weight
        self.cls_loss_weight = cls_loss_weight
        self.margin = margin
        self.alpha = alpha
        self.feature = feature
        self.pooling = pooling
        self.ignore_index = ignore_index
        self.gather_across_ranks = gather_across_ranks
        self.register_buffer(
            'is_background',
            F.one_hot(torch.tensor(list(background_classes), dtype=torch.long),
                      num_classes).sum(0).bool()
            if background_classes else torch.zeros(num_classes,
                                                   dtype=torch.bool),
            persistent=False)
        self.mapping = ClassPromptMapping(num_classes, num_guided_prompts,
                                          embed_dims, seed=kmeans_seed)

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

    # ------------------------------------------------------------ vectors
    def _embed(self, backbone: nn.Module, layer: int,
               vectors: torch.Tensor) -> torch.Tensor:
        """Vectors ``(..., D)`` in the compared space, float32 (callers run
        with autocast off: fp16 projections and similarities overflow
        easily, and these tensors are small)."""
        vectors = vectors.float()
        if self.feature == 'raw':
            return vectors
        return backbone.layers[layer].attn.attn.project_query(
            vectors, bias=False)

    @staticmethod
    def _split_tokens(tap: AttentionTaps):
        """``context`` ``(B, T, D)`` -> ([CLS] ``(B, D)`` or None, patches
        ``(B, L, D)``)."""
        cls = tap.context[:, 0] if tap.num_prefix else None
        return cls, tap.context[:, tap.num_prefix + tap.num_prompts:]

    # ------------------------------------------------------------ losses
    def loss(self,
             backbone: nn.Module,
             taps: Dict[int, AttentionTaps],
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
        if not self.mapping.initialized:
            raise RuntimeError(
                'the class -> prompt mapping is not initialised: add '
                "dict(type='ClassPromptMappingHook') to custom_hooks, or call "
                'model.refresh_class_mapping() after collecting class '
                'features')
        labels = self.patch_labels(gt, grid, backbone.patch_size)
        target = self.sample_targets(labels, seeds)
        prompt_of_target = torch.where(
            target >= 0, self.mapping.lookup(target.clamp(min=0)), NO_CLASS)
        use = prompt_of_target >= 0  # images that contribute
        self.accumulate(taps, labels)

        losses = dict(loss_prompt=0., loss_cls=0.)
        with torch.autocast(gt.device.type, enabled=False):
            self._layer_losses(backbone, taps, labels, target,
                               prompt_of_target, use, losses)
        n = len(self.guided_layers)
        out = dict(loss_prompt=self.prompt_loss_weight *
                   losses['loss_prompt'] / n)
        if taps[self.guided_layers[0]].num_prefix:
            out['loss_cls'] = self.cls_loss_weight * losses['loss_cls'] / n
        # Logged, not optimised (no 'loss' in the name): how much of the
        # batch fed the metric loss, and prompts that guide no class.
        out['img_frac'] = use.float().mean().detach()
        out['unassigned_prompts'] = torch.tensor(
            float(self.mapping.num_unassigned_prompts()), device=use.device)
        return out

    def _layer_losses(self, backbone, taps, labels, target, prompt_of_target,
                      use, losses) -> None:
        """Add each guided layer's ``L_p`` and ``L_cls`` into ``losses``."""
        for layer in self.guided_layers:
            tap = taps[layer]
            cls, patches = self._split_tokens(tap)
            proxies = self._embed(backbone, layer,
                                  backbone.prompts[str(layer)])
            if self.pooling == 'class_masked':
                mask = (labels == target[:, None]) & use[:, None]
                samples = patches[mask]
                sample_labels = prompt_of_target[:, None].expand_as(
                    labels)[mask]
            else:
                samples = patches.mean(1)[use]
                sample_labels = prompt_of_target[use]
            losses['loss_prompt'] = losses['loss_prompt'] + proxy_anchor_loss(
                *self._gather(self._embed(backbone, layer, samples),
                              sample_labels), proxies, self.margin,
                self.alpha)
            if cls is not None:
                losses['loss_cls'] = losses['loss_cls'] + proxy_anchor_loss(
                    *self._gather(self._embed(backbone, layer, cls[use]),
                                  prompt_of_target[use]), proxies,
                    self.margin, self.alpha)

    def _gather(self, samples: torch.Tensor, labels: torch.Tensor):
        """With ``gather_across_ranks``, all ranks' samples ``(M_r, D)`` and
        labels ``(M_r,)`` concatenated, differentiably: every rank then sees
        the global batch's negatives, and DDP's gradient averaging turns each
        rank's identical loss into exactly the single-process gradient."""
        if not self.gather_across_ranks or dist.get_world_size() == 1:
            return samples, labels
        counts = dist.all_gather(
            torch.tensor([samples.shape[0]], device=samples.device))
        longest = int(max(c.item() for c in counts))
        pad = longest - samples.shape[0]
        padded = F.pad(samples, (0, 0, 0, pad))
        padded_labels = F.pad(labels, (0, pad), value=NO_CLASS)
        # autograd-aware all_gather: gradients flow back to each rank
        all_samples = torch.cat(
            torch.distributed.nn.functional.all_gather(padded))
        all_labels = torch.cat(dist.all_gather(padded_labels))
        keep = all_labels >= 0
        return all_samples[keep], all_labels[keep]

    # ------------------------------------------------------------ mapping
    @torch.no_grad()
    def accumulate(self, taps: Dict[int, AttentionTaps],
                   labels: torch.Tensor) -> None:
        """Add the raw patch features of the deepest guided layer to the
        per-class sums (``labels`` ``(B, L)`` from ``patch_labels``). Raw
        features suffice: ``W_q`` is linear, so it is applied to the class
        means at refresh time."""
        _, patches = self._split_tokens(taps[max(self.guided_layers)])
        valid = labels >= 0
        self.mapping.accumulate(patches[valid], labels[valid])

    def refresh(self, backbone: nn.Module) -> Dict[str, int]:
        """k-means over the accumulated class means (see
        ``ClassPromptMapping.refresh``)."""
        layer = max(self.guided_layers)
        return self.mapping.refresh(
            lambda means: self._embed(backbone, layer, means))
