"""What segmentation and classification metric guidance share (paper
Sec. 3.2-3.4; ``docs/method.md`` sections 2-3): the compared vector space,
the loop over guided layers, the metric losses against the guided prompts,
cross-rank gathering and the class -> prompt mapping.

Guidance never sees the backbone: everything it compares comes from the
``LayerTaps`` of the guided layers (backbone -> taps -> guidance -> loss).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.distributed.nn
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmseg.registry import MODELS

from ..backbones.layer_taps import LayerTaps
from .class_prompt_mapping import ClassPromptMapping
from .sentinels import NO_PROMPT

#: Compared vector spaces: both sides through ``W_q`` (the paper's), or
#: unprojected.
FEATURES = ('query', 'raw')
#: Tokens whose patch positions are the ``L_p`` samples.
TOKEN_SOURCES = ('attention_output', 'block_input')
#: The [CLS] vector of ``L_cls``.
CLS_SOURCES = ('attention_output', 'attention_query')


def default_loss(name: str) -> dict:
    """The paper's term: Proxy-Anchor, delta 0.1, alpha 32, weight 0.05."""
    return dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
                loss_weight=0.05, loss_name=name)


class MetricGuidance(nn.Module):
    """Base of ``SegMetricGuidance`` and ``ClsMetricGuidance``.

    The base runs the loop over guided layers (proxies once
    per layer, the assigned-prompt mask once per batch, cross-rank gather,
    mean over layers, logged ``img_frac`` / ``unassigned_prompts``).
    Subclasses supply ``image_targets`` (one class per image and which
    patch tokens are its samples) and ``accumulate`` (class statistics for
    the mapping, called by the model, never by ``loss``).

    Vectors compared, each chosen by its own option:

    * ``feature``: the space. ``'query'`` (default, the paper's better
      choice, Sec. 3.2): tokens, [CLS] and prompts through the layer's
      ``W_q`` without bias; ``'raw'``: unprojected (the prompts are then
      the raw proxies, as in the authors' released code).
    * ``token_source``: which tokens' patch positions are the ``L_p``
      samples (and the class statistics of the mapping).
      ``'attention_output'`` (default): the attention output before the
      output projection (a saliency aggregate, Sec. 3.3); ``'block_input'``:
      the layer's input tokens, before its first norm (released code).
    * ``cls_source``: the [CLS] vector of ``L_cls``. ``'attention_output'``
      (default): the [CLS] of the attention output, in ``feature``'s space;
      ``'attention_query'``: the query the attention computed for [CLS],
      ``W_q LN(x_cls) + b_q``, used as is (released code; reads
      ``LayerTaps.query``).

    The released code sets ``feature='raw'``, ``token_source='block_input'``,
    ``cls_source='attention_query'`` and averages the patch tokens per image
    (``pooling='image_mean'``).

    Only prompts that some class maps to are proxies. Prompts left without a
    class (tasks with fewer classes than guided prompts, paper App. A.3) are
    the paper's "extra unassigned prompts": they train through the task loss
    only and are not pushed away from every token by the negative term.

    Args:
        num_classes: classes ``C``.
        embed_dims, guided_layers, num_guided_prompts: from the backbone
            (filled in by the segmentor / classifier).
        loss_prompt: the ``L_p`` term (Eq. 4), a loss config such as
            ``dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
            loss_weight=0.05)`` (``loss_weight`` is ``beta``; ``loss_name``
            defaults to ``'loss_prompt'``); ``None`` leaves the term out.
        loss_cls: the ``L_cls`` term (Eq. 5), ``loss_weight`` is ``lambda``;
            ``loss_name`` defaults to ``'loss_cls'``; ``None`` leaves it out.
        feature: ``'query'`` or ``'raw'`` (see above).
        token_source: ``'attention_output'`` or ``'block_input'``.
        cls_source: ``'attention_output'`` or ``'attention_query'``.
        pooling: how patch tokens become samples; ``'image_mean'`` (one
            sample per image) or the subclass's token-level default.
        kmeans_seed: random state of the class -> prompt k-means.
        gather_across_ranks: compute the loss over the samples of all ranks
            (autograd-aware all_gather), so negatives come from the global
            batch, as in a single-process run with the same global batch.
            Off: each rank uses its own samples only (cheaper, what the
            released code does).
    """

    #: token-level pooling name of the subclass, then ``'image_mean'``
    POOLINGS: Tuple[str, ...] = ('tokens', 'image_mean')

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 guided_layers: Sequence[int],
                 num_guided_prompts: int,
                 loss_prompt: Optional[dict] = default_loss('loss_prompt'),
                 loss_cls: Optional[dict] = default_loss('loss_cls'),
                 feature: str = 'query',
                 token_source: str = 'attention_output',
                 cls_source: str = 'attention_output',
                 pooling: Optional[str] = None,
                 kmeans_seed: int = 0,
                 gather_across_ranks: bool = False):
        super().__init__()
        if not guided_layers:
            raise ValueError(
                'metric guidance needs guided layers: set the backbone\'s '
                '`guided_layers` (paper: the last layer, e.g. (23,) for '
                'ViT-L, (11,) for ViT-B)')
        if len(set(guided_layers)) != len(guided_layers):
            raise ValueError(f'guided_layers {tuple(guided_layers)} name a '
                             'layer twice: its loss would count twice')
        pooling = self.POOLINGS[0] if pooling is None else pooling
        for name, value, choices in (
                ('feature', feature, FEATURES),
                ('token_source', token_source, TOKEN_SOURCES),
                ('cls_source', cls_source, CLS_SOURCES),
                ('pooling', pooling, self.POOLINGS)):
            if value not in choices:
                raise ValueError(f'{name} must be one of {choices}, got '
                                 f'{value!r}')
        self.num_classes = num_classes
        self.guided_layers = tuple(guided_layers)
        self.feature = feature
        self.token_source = token_source
        self.cls_source = cls_source
        self.pooling = pooling
        self.gather_across_ranks = gather_across_ranks
        self.loss_prompt = self._build_loss(loss_prompt, 'loss_prompt')
        self.loss_cls = self._build_loss(loss_cls, 'loss_cls')
        if self.loss_prompt is not None and self.loss_cls is not None and \
                self.loss_prompt.loss_name == self.loss_cls.loss_name:
            raise ValueError('loss_prompt and loss_cls need different '
                             f'loss_name, both are '
                             f'{self.loss_prompt.loss_name!r}')
        self.mapping = ClassPromptMapping(num_classes, num_guided_prompts,
                                          embed_dims, seed=kmeans_seed)

    @staticmethod
    def _build_loss(cfg: Optional[dict], name: str) -> Optional[nn.Module]:
        if cfg is None:
            return None
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(f'{name} must be a loss config with a type, '
                             f"e.g. dict(type='ProxyAnchorLoss'), got {cfg!r}")
        return MODELS.build(cfg, default_args=dict(loss_name=name))

    # ------------------------------------------------------------ vectors
    @property
    def mapping_layer(self) -> int:
        """The guided layer whose features build the class statistics."""
        return max(self.guided_layers)

    def token_features(self, tap: LayerTaps) -> torch.Tensor:
        """``(B, T, D)`` tokens whose patch positions are ``L_p`` samples and
        whose patch / [CLS] vectors feed the class statistics (before
        ``embed``), by ``token_source``."""
        return tap.block_input if self.token_source == 'block_input' \
            else tap.context

    def embed(self, vectors: torch.Tensor,
              query_weight: torch.Tensor) -> torch.Tensor:
        """Vectors ``(..., D)`` in the compared space, float32: through
        ``query_weight`` (``W_q``, no bias) for ``feature='query'``. The
        one place that decides the space, for the loss and the mapping
        alike. The projection runs with autocast off (fp16 projections
        overflow easily, and these tensors are small); the losses compute
        their similarities in float32 themselves."""
        vectors = vectors.float()
        if self.feature != 'query':
            return vectors
        with torch.autocast(vectors.device.type, enabled=False):
            return F.linear(vectors, query_weight.float())

    def _cls_samples(self, tap: LayerTaps) -> torch.Tensor:
        """``(B, D)`` [CLS] vectors of ``L_cls`` in the compared space."""
        if self.cls_source == 'attention_output':
            return self.embed(tap.cls_token(), tap.query_weight)
        if tap.query is None:
            raise RuntimeError(
                "cls_source='attention_query' compares the [CLS] query "
                'W_q LN(x) + b_q with the prompts, but the backbone taps '
                "carry no `query` tensor; use cls_source='attention_output'")
        return tap.query[:, 0].float()

    @torch.no_grad()
    def refresh_mapping(self, query_weight: torch.Tensor) -> Dict[str, int]:
        """Re-cluster classes onto prompts from the statistics accumulated
        on all ranks, with the class means in the compared space
        (``embed`` with ``query_weight``, ``W_q`` of ``mapping_layer``; the
        statistics are unprojected sums, and ``W_q`` is linear). Identical
        on every rank; returns the refresh statistics of
        ``ClassPromptMapping.assign``."""
        seen, means = self.mapping.class_means()
        if len(seen):
            means = self.embed(means, query_weight)
        return self.mapping.assign(seen, means)

    def _check_initialized(self) -> None:
        if not self.mapping.initialized:
            raise RuntimeError(
                'the class -> prompt mapping is not initialised: add '
                "dict(type='ClassPromptMappingHook') to custom_hooks, or call "
                'model.refresh_class_mapping() after collecting class '
                'features')

    # ------------------------------------------------------------ subclass
    def image_targets(self, taps: Dict[int, LayerTaps], labels: torch.Tensor,
                      **kwargs) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(classes (B,), token_mask (B, L) or None)``: one class per image
        (``NO_CLASS`` for none) and which patch tokens are its samples
        (``None``: all). Implemented by subclasses."""
        raise NotImplementedError

    def accumulate(self, taps: Dict[int, LayerTaps],
                   labels: torch.Tensor) -> None:
        """Add a batch to the class statistics. Implemented by subclasses."""
        raise NotImplementedError

    # ------------------------------------------------------------ losses
    def loss(self, taps: Dict[int, LayerTaps], labels: torch.Tensor,
             **kwargs) -> Dict[str, torch.Tensor]:
        """DA-VPT losses for one batch.

        Args:
            taps: ``forward_with_taps`` output for the guided layers.
            labels: the batch's labels as the subclass takes them.
            **kwargs: passed to ``image_targets``.
        Returns:
            The weighted ``L_p`` (under ``loss_prompt.loss_name``) and, with
            a [CLS] token, ``L_cls`` (``loss_cls.loss_name``), averaged over
            guided layers; zero (not NaN) when no image has a usable class.
            Also the logged scalars ``img_frac`` (images that contributed)
            and ``unassigned_prompts``.
        """
        self._check_initialized()
        classes, token_mask = self.image_targets(taps, labels, **kwargs)
        prompt_of = self.mapping.lookup(classes)
        use = prompt_of != NO_PROMPT  # images that contribute
        assigned = self.mapping.assigned_prompts()
        position = torch.cumsum(assigned.long(), 0) - 1  # row among proxies
        if self.pooling == 'image_mean':
            sample_prompts = prompt_of[use]
        else:
            if token_mask is None:
                first = taps[self.guided_layers[0]]
                token_mask = torch.ones(
                    len(classes), first.context.shape[1] - first.first_patch,
                    dtype=torch.bool, device=classes.device)
            token_mask = token_mask & use[:, None]
            sample_prompts = prompt_of[:, None].expand_as(token_mask)[
                token_mask]
        has_cls = taps[self.guided_layers[0]].num_prefix > 0
        totals = {}
        for layer in self.guided_layers:
            tap = taps[layer]
            proxies = self.embed(tap.prompts, tap.query_weight)[assigned]
            if self.loss_prompt is not None:
                patches = tap.patch_tokens(self.token_features(tap))
                samples = patches.mean(1)[use] \
                    if self.pooling == 'image_mean' else patches[token_mask]
                self._add(totals, self.loss_prompt,
                          self.embed(samples, tap.query_weight),
                          sample_prompts, proxies, position)
            if self.loss_cls is not None and has_cls:
                self._add(totals, self.loss_cls, self._cls_samples(tap)[use],
                          prompt_of[use], proxies, position)
        out = {name: total / len(self.guided_layers)
               for name, total in totals.items()}
        # Logged, not optimised (no 'loss' in the name): how much of the
        # batch fed the metric loss, and prompts that guide no class.
        out['img_frac'] = use.float().mean().detach()
        out['unassigned_prompts'] = (~assigned).sum().float().to(use.device)
        return out

    def _add(self, totals: dict, loss: nn.Module, samples: torch.Tensor,
             prompts: torch.Tensor, proxies: torch.Tensor,
             position: torch.Tensor) -> None:
        """Add ``loss`` of ``samples`` ``(M, D)`` with prompt ids ``(M,)``
        (renumbered by ``position`` to rows of ``proxies``) into
        ``totals``."""
        samples, prompts = self._gather(samples, prompts)
        value = loss(samples, position[prompts], proxies)
        totals[loss.loss_name] = totals.get(loss.loss_name, 0.) + value

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
        padded_labels = F.pad(labels, (0, pad), value=NO_PROMPT)
        # autograd-aware all_gather: gradients flow back to each rank
        all_samples = torch.cat(
            torch.distributed.nn.functional.all_gather(padded))
        all_labels = torch.cat(dist.all_gather(padded_labels))
        keep = all_labels != NO_PROMPT
        return all_samples[keep], all_labels[keep]
