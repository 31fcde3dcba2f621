"""What segmentation and classification metric guidance share (METHOD.md
sections 2-3): the compared vector space, the Proxy-Anchor loss against the
guided prompts, cross-rank gathering and the class -> prompt mapping."""
from typing import Dict, Sequence

import torch
import torch.distributed.nn
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist

from ..backbones.layer_taps import LayerTaps
from ..losses import proxy_anchor_loss
from .class_prompt_mapping import ClassPromptMapping

NO_CLASS = -1


class MetricGuidance(nn.Module):
    """Base of ``SegMetricGuidance`` and ``ClsMetricGuidance``.

    Vectors compared (``x`` and ``p``): the attention output before the
    output projection at the token positions (a saliency aggregate that needs
    no attention map), and the prompt tokens. With ``feature='query'`` both
    go through the layer's query weight ``W_q`` (no bias, as the paper's
    ``W_q p``, ``W_q x``); ``'raw'`` compares them as they are.

    Only prompts that some class maps to are proxies. Prompts left without a
    class (tasks with fewer classes than guided prompts, paper App. A.3) are
    the paper's "extra unassigned prompts": they train through the task loss
    only and are not pushed away from every token by the negative term.

    Args:
        num_classes: classes ``C``.
        embed_dims, guided_layers, num_guided_prompts: from the backbone
            (filled in by the segmentor / classifier).
        prompt_loss_weight: ``beta`` (paper: 0.05 for segmentation).
        cls_loss_weight: ``lambda`` (paper: 0.05 for segmentation).
        margin, alpha: Proxy-Anchor ``delta`` (0.1) and ``alpha`` (32).
        feature: ``'query'`` (default, the paper's better choice) or ``'raw'``.
        kmeans_seed: random state of the class -> prompt k-means.
        gather_across_ranks: compute the loss over the samples of all ranks
            (autograd-aware all_gather), so negatives come from the global
            batch, as in a single-process run with the same global batch.
            Off: each rank uses its own samples only (cheaper, what the
            reference code does).
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
                 kmeans_seed: int = 0,
                 gather_across_ranks: bool = False):
        super().__init__()
        if not guided_layers:
            raise ValueError(
                'metric guidance needs guided layers: set the backbone\'s '
                '`guided_layers` (paper: the last layer, e.g. (23,) for '
                'ViT-L, (11,) for ViT-B)')
        if feature not in ('query', 'raw'):
            raise ValueError(f"feature must be 'query' or 'raw', got "
                             f'{feature!r}')
        self.num_classes = num_classes
        self.guided_layers = tuple(guided_layers)
        self.prompt_loss_weight = prompt_loss_weight
        self.cls_loss_weight = cls_loss_weight
        self.margin = margin
        self.alpha = alpha
        self.feature = feature
        self.gather_across_ranks = gather_across_ranks
        self.mapping = ClassPromptMapping(num_classes, num_guided_prompts,
                                          embed_dims, seed=kmeans_seed)

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
    def _split_tokens(tap: LayerTaps):
        """``context`` ``(B, T, D)`` -> ([CLS] ``(B, D)`` or None, patches
        ``(B, L, D)``)."""
        cls = tap.context[:, 0] if tap.num_prefix else None
        return cls, tap.context[:, tap.num_prefix + tap.num_prompt_tokens:]

    def _check_initialized(self) -> None:
        if not self.mapping.initialized:
            raise RuntimeError(
                'the class -> prompt mapping is not initialised: add '
                "dict(type='ClassPromptMappingHook') to custom_hooks, or call "
                'model.refresh_class_mapping() after collecting class '
                'features')

    # ------------------------------------------------------------ losses
    def _assigned_prompts(self):
        """``(assigned, position)``: which guided prompts some class maps to
        ``(N,)`` bool, and each prompt's index among those ``(N,)``."""
        mapped = self.mapping.class_to_prompt
        assigned = torch.zeros(self.mapping.num_prompts, dtype=torch.bool,
                               device=mapped.device)
        assigned[mapped[mapped >= 0]] = True
        return assigned, torch.cumsum(assigned.long(), 0) - 1

    def _proxies(self, backbone: nn.Module, layer: int,
                 assigned: torch.Tensor) -> torch.Tensor:
        """The assigned prompts of ``layer`` in the compared space
        ``(N_assigned, D)``: the Proxy-Anchor proxies."""
        return self._embed(backbone, layer,
                           backbone.layer_prompts(layer))[assigned]

    def _proxy_loss(self, backbone: nn.Module, layer: int,
                    samples: torch.Tensor, prompt_labels: torch.Tensor,
                    proxies: torch.Tensor,
                    position: torch.Tensor) -> torch.Tensor:
        """Proxy-Anchor loss of ``samples`` ``(M, D)`` with guided-prompt
        labels ``(M,)`` against ``proxies`` (``_proxies``); ``position``
        renumbers prompt labels to rows of ``proxies``."""
        samples, prompt_labels = self._gather(
            self._embed(backbone, layer, samples), prompt_labels)
        return proxy_anchor_loss(samples, position[prompt_labels], proxies,
                                 self.margin, self.alpha)

    def _weighted(self, losses: Dict[str, torch.Tensor], has_cls: bool,
                  used: torch.Tensor,
                  assigned: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Loss weights, the mean over guided layers and logged scalars."""
        n = len(self.guided_layers)
        out = dict(loss_prompt=self.prompt_loss_weight *
                   losses['loss_prompt'] / n)
        if has_cls:
            out['loss_cls'] = self.cls_loss_weight * losses['loss_cls'] / n
        # Logged, not optimised (no 'loss' in the name): how much of the
        # batch fed the metric loss, and prompts that guide no class.
        out['img_frac'] = used.float().mean().detach()
        out['unassigned_prompts'] = (~assigned).sum().float().to(used.device)
        return out

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
    def refresh(self, backbone: nn.Module) -> Dict[str, int]:
        """k-means over the accumulated class means (see
        ``ClassPromptMapping.refresh``), in the compared space of the
        deepest guided layer."""
        layer = max(self.guided_layers)
        return self.mapping.refresh(
            lambda means: self._embed(backbone, layer, means))
