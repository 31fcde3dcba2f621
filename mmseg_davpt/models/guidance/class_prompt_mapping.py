"""Class -> prompt mapping by k-means over class representations (paper
Sec. 3.4; ``docs/method.md`` section 3), kept as module buffers so it lives
in checkpoints.

The mapping decides *what* (statistics, clustering, cache files, rank
agreement, the prompt -> class-name grouping); ``ClassPromptMappingHook``
decides *when*, through the model's public methods.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist

from . import class_statistics
from .prompt_assignment import assign_seen_classes
from .sentinels import NO_CLASS, NO_PROMPT


def check_class_to_prompt(mapping: torch.Tensor, num_prompts: int,
                          name: str = 'class_to_prompt') -> None:
    """``ValueError`` naming ``name``, the classes and the ids when the
    mapping ``(C,)`` holds a prompt id outside ``0..num_prompts-1`` other
    than ``NO_PROMPT``, or is not an integer tensor."""
    if mapping.dtype.is_floating_point or mapping.dtype == torch.bool:
        raise ValueError(f'{name} must hold integer prompt ids, got '
                         f'{mapping.dtype}')
    bad = (mapping != NO_PROMPT) & ((mapping < 0) | (mapping >= num_prompts))
    if bool(bad.any()):
        classes = torch.nonzero(bad).flatten()
        shown = ', '.join(f'class {int(c)} -> {int(mapping[c])}'
                          for c in classes[:8])
        raise ValueError(
            f'{name} holds prompt ids outside the {num_prompts} guided '
            f'prompts (valid: 0..{num_prompts - 1}, or {NO_PROMPT} for no '
            f'prompt): {shown}' + (f' and {len(classes) - 8} more'
                                   if len(classes) > 8 else '')
            + '. The checkpoint is damaged or was made with more guided '
            'prompts.')


class ClassPromptMapping(nn.Module):
    """Accumulates per-class features and clusters classes onto prompts.

    Buffers (all saved in checkpoints, restored by ``--resume``):
        ``class_to_prompt`` ``(C,)`` int64, prompt of each class or
        ``NO_PROMPT``; ``centroids`` ``(N, D)`` cluster centres (warm start
        of the next k-means); ``feat_sum`` ``(C, D)`` and ``feat_count``
        ``(C,)`` the features accumulated (on this rank) since the last
        refresh; ``num_refreshes``.

    Args:
        num_classes: ``C``.
        num_prompts: guided prompts ``N`` (clusters).
        embed_dims: feature width ``D``.
        seed: k-means random state (same on every rank).
    """

    def __init__(self, num_classes: int, num_prompts: int, embed_dims: int,
                 seed: int = 0):
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f'num_classes must be > 0, got {num_classes}')
        if num_prompts <= 0:
            raise ValueError('the class -> prompt mapping needs at least one '
                             f'guided prompt, got {num_prompts}')
        self.num_classes = num_classes
        self.num_prompts = num_prompts
        self.embed_dims = embed_dims
        self.seed = seed
        self.register_buffer(
            'class_to_prompt',
            torch.full((num_classes, ), NO_PROMPT, dtype=torch.long))
        self.register_buffer('centroids', torch.zeros(num_prompts, embed_dims))
        self.register_buffer('feat_sum', torch.zeros(num_classes, embed_dims))
        self.register_buffer('feat_count', torch.zeros(num_classes))
        self.register_buffer('num_refreshes', torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # every loader (torch's, mmengine's resume / load_from, PEFT files)
        # goes through here: a damaged or hand-edited mapping stops the load
        # instead of crashing a later lookup or picking another prompt
        key = prefix + 'class_to_prompt'
        if key in state_dict:
            check_class_to_prompt(state_dict[key], self.num_prompts, key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def initialized(self) -> bool:
        return bool(self.num_refreshes.item() > 0)

    # ------------------------------------------------------------ lookup
    def lookup(self, class_ids: torch.Tensor) -> torch.Tensor:
        """Prompt of each class id (any shape); ``NO_PROMPT`` for classes
        without one and for ``NO_CLASS`` entries."""
        prompts = self.class_to_prompt[class_ids.clamp(min=0)]
        return torch.where(class_ids == NO_CLASS, NO_PROMPT, prompts)

    def assigned_prompts(self) -> torch.Tensor:
        """``(N,)`` bool: prompts that some class maps to."""
        mapped = self.class_to_prompt
        assigned = torch.zeros(self.num_prompts, dtype=torch.bool,
                               device=mapped.device)
        assigned[mapped[mapped != NO_PROMPT]] = True
        return assigned

    def num_unassigned_prompts(self) -> int:
        """Prompts that no class maps to."""
        return self.num_prompts - int(self.assigned_prompts().sum())

    def prompt_groups(self, class_names: Optional[Sequence[str]] = None
                      ) -> List[List[str]]:
        """Class names of each prompt, ``[[names of prompt 0], ...]`` (empty
        lists for prompts without a class); ``'class <id>'`` for ids that
        ``class_names`` does not cover."""
        groups = [[] for _ in range(self.num_prompts)]
        for class_id, prompt in enumerate(self.class_to_prompt.tolist()):
            if prompt != NO_PROMPT:
                groups[prompt].append(
                    str(class_names[class_id]) if class_names is not None
                    and class_id < len(class_names) else f'class {class_id}')
        return groups

    # ------------------------------------------------------------ statistics
    @torch.no_grad()
    def accumulate(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add ``features`` ``(M, D)`` to the sums of their ``labels``
        ``(M,)`` (valid class ids only)."""
        self.feat_sum.index_add_(0, labels, features.detach().float())
        self.feat_count.index_add_(
            0, labels, torch.ones_like(labels, dtype=self.feat_count.dtype))

    def reset_statistics(self) -> None:
        self.feat_sum.zero_()
        self.feat_count.zero_()

    @torch.no_grad()
    def global_statistics(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sums ``(C, D)`` and counts ``(C,)`` added over all ranks (copies;
        the only cross-rank reduction of the statistics)."""
        feat_sum = self.feat_sum.clone()
        feat_count = self.feat_count.clone()
        dist.all_reduce(feat_sum, op='sum')
        dist.all_reduce(feat_count, op='sum')
        return feat_sum, feat_count

    @torch.no_grad()
    def class_means(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Classes seen on any rank since the last refresh ``(K,)`` and their
        mean features ``(K, D)``; identical on every rank."""
        feat_sum, feat_count = self.global_statistics()
        seen = torch.nonzero(feat_count > 0).flatten()
        return seen, feat_sum[seen] / feat_count[seen, None]

    def save_statistics(self, path: str,
                        classes: Optional[Sequence[str]],
                        settings: Optional[dict] = None) -> None:
        """Write the global statistics to ``path`` (rank 0) for later runs,
        with the ``settings`` they depend on; every rank must call it."""
        feat_sum, feat_count = self.global_statistics()
        if dist.get_rank() == 0:
            class_statistics.save(path, feat_sum, feat_count, classes,
                                  self.embed_dims, settings)
        dist.barrier()

    def load_statistics(self, path: str,
                        classes: Optional[Sequence[str]],
                        settings: Optional[dict] = None) -> None:
        """Replace the statistics by those of ``path``
        (``CacheMismatchError`` naming every difference when made for other
        classes, width or ``settings``). Every rank reads and checks the
        file; rank 0 holds the sums, so the cross-rank sum is exact."""
        feat_sum, feat_count = class_statistics.load(path, classes,
                                                     self.embed_dims, settings)
        keep = dist.get_rank() == 0
        self.feat_sum.copy_(feat_sum if keep else torch.zeros_like(feat_sum))
        self.feat_count.copy_(feat_count if keep else
                              torch.zeros_like(feat_count))

    # ------------------------------------------------------------ refresh
    @torch.no_grad()
    def assign(self, seen: torch.Tensor,
               embedded_means: torch.Tensor) -> Dict[str, int]:
        """Re-cluster the ``seen`` classes ``(K,)`` from their means ``(K,
        D)`` in the space the loss compares (``class_means`` embedded by
        ``MetricGuidance.refresh_mapping``); see ``assign_seen_classes`` for the rules.

        Clustering runs once (rank 0) and is broadcast; ranks are then
        checked to agree. Resets the statistics.

        Returns:
            ``dict(changed, seen_classes, assigned_classes,
            unassigned_prompts)``.
        """
        previous = self.class_to_prompt.clone()
        mapping, centroids = previous.clone(), self.centroids.clone()
        if dist.get_rank() == 0 and len(seen):
            means = F.normalize(embedded_means.detach().float(), dim=1)
            new_mapping, new_centroids = assign_seen_classes(
                previous.cpu(), seen.cpu(), means.cpu(), centroids.cpu(),
                warm_start=self.initialized, seed=self.seed)
            mapping.copy_(new_mapping)
            centroids.copy_(new_centroids)
        dist.broadcast(mapping, src=0)
        dist.broadcast(centroids, src=0)
        self.class_to_prompt.copy_(mapping)
        self.centroids.copy_(centroids)
        self.check_agreement()
        self.num_refreshes += 1
        self.reset_statistics()
        return dict(
            changed=int((previous != self.class_to_prompt).sum()),
            seen_classes=len(seen),
            assigned_classes=int((self.class_to_prompt != NO_PROMPT).sum()),
            unassigned_prompts=self.num_unassigned_prompts())

    @torch.no_grad()
    def assign_random(self, seed: int) -> Dict[str, int]:
        """Replace the mapping by a random fixed one: the ``C`` classes
        shuffled with ``seed`` and dealt round-robin onto the prompts (so
        every prompt gets a class when ``C >= N``, and group sizes differ
        by at most one, like a balanced clustering). The same ``seed``
        gives the same mapping on every rank. Resets the statistics and
        zeroes the centroids: the mapping is meant to stay fixed (the
        random-assignment ablation; ``ClassPromptMappingHook`` never
        refreshes it).

        Returns:
            The ``assign`` statistics (``seen_classes`` is 0: no class
            feature was used).
        """
        previous = self.class_to_prompt.clone()
        order = torch.randperm(self.num_classes,
                               generator=torch.Generator().manual_seed(seed))
        mapping = torch.empty(self.num_classes, dtype=torch.long)
        mapping[order] = torch.arange(self.num_classes) % self.num_prompts
        self.class_to_prompt.copy_(mapping)
        self.centroids.zero_()
        self.check_agreement()
        self.num_refreshes += 1
        self.reset_statistics()
        return dict(
            changed=int((previous != self.class_to_prompt).sum()),
            seen_classes=0,
            assigned_classes=self.num_classes,
            unassigned_prompts=self.num_unassigned_prompts())

    def check_agreement(self) -> None:
        """``RuntimeError`` unless every rank holds the same mapping (a
        cheap guard: ``C`` integers)."""
        if dist.get_world_size() == 1:
            return
        if any(not torch.equal(m, self.class_to_prompt)
               for m in dist.all_gather(self.class_to_prompt)):
            raise RuntimeError('DA-VPT: ranks disagree on the class -> '
                               'prompt mapping after a refresh')
