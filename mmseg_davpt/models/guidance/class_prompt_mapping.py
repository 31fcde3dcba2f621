"""Class -> prompt mapping by k-means over class representations (METHOD.md
section 3), kept as module buffers so it lives in checkpoints."""
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist

UNASSIGNED = -1


_THREADPOOLS = None


def _single_threaded():
    """Context running BLAS and OpenMP (scikit-learn's) on one thread.

    The threadpoolctl controller (shipped with scikit-learn) is made once,
    on the first refresh, after scikit-learn is imported: scanning the
    loaded libraries costs ~2 ms, re-limiting them ~0.03 ms.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


class ClassPromptMapping(nn.Module):
    """Accumulates per-class features and clusters classes onto prompts.

    Buffers (all saved in checkpoints, restored by ``--resume``):
        ``class_to_prompt`` ``(C,)`` int64, prompt of each class or -1;
        ``centroids`` ``(N, D)`` k-means centres (warm start of the next
        refresh); ``feat_sum`` ``(C, D)`` and ``feat_count`` ``(C,)`` the
        features accumulated since the last refresh; ``num_refreshes``.

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
            torch.full((num_classes, ), UNASSIGNED, dtype=torch.long))
        self.register_buffer('centroids', torch.zeros(num_prompts, embed_dims))
        self.register_buffer('feat_sum', torch.zeros(num_classes, embed_dims))
        self.register_buffer('feat_count', torch.zeros(num_classes))
        self.register_buffer('num_refreshes', torch.zeros((), dtype=torch.long))

    @property
    def initialized(self) -> bool:
        return bool(self.num_refreshes.item() > 0)

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

    def num_unassigned_prompts(self) -> int:
        """Prompts that no class maps to."""
        assigned = self.class_to_prompt[self.class_to_prompt >= 0]
        return self.num_prompts - int(torch.unique(assigned).numel())

    def lookup(self, class_ids: torch.Tensor) -> torch.Tensor:
        """Prompt index of each class id (any shape); -1 where unassigned."""
        return self.class_to_prompt[class_ids]

    @torch.no_grad()
    def refresh(self,
                transform: Optional[Callable[[torch.Tensor],
                                             torch.Tensor]] = None
                ) -> Dict[str, int]:
        """Re-cluster the classes seen since the last refresh.

        Sums and counts are added over all ranks, clustering runs once (rank
        0) and its result is broadcast, so every rank holds the same mapping.
        Classes not seen keep their assignment. ``transform`` maps class mean
        features ``(K, D)`` into the space the loss compares in.

        Returns:
            ``dict(changed, seen_classes, assigned_classes,
            unassigned_prompts)``.
        """
        feat_sum = self.feat_sum.clone()
        feat_count = self.feat_count.clone()
        dist.all_reduce(feat_sum, op='sum')
        dist.all_reduce(feat_count, op='sum')
        previous = self.class_to_prompt.clone()
        mapping, centroids = self.class_to_prompt.clone(), self.centroids.clone()
        if dist.get_rank() == 0:
            seen = torch.nonzero(feat_count > 0).flatten()
            if len(seen):
                means = feat_sum[seen] / feat_count[seen, None]
                if transform is not None:
                    means = transform(means.to(self.centroids.device))
                means = F.normalize(means.float(), dim=1)
                assign, centroids = self._cluster(means.cpu(), centroids.cpu())
                mapping[seen] = assign.to(mapping.device)
        dist.broadcast(mapping, src=0)
        dist.broadcast(centroids, src=0)
        self.class_to_prompt.copy_(mapping)
        self.centroids.copy_(centroids.to(self.centroids.device))
        self.num_refreshes += 1
        self.reset_statistics()
        return dict(
            changed=int((previous != self.class_to_prompt).sum()),
            seen_classes=int((feat_count > 0).sum()),
            assigned_classes=int((self.class_to_prompt >= 0).sum()),
            unassigned_prompts=self.num_unassigned_prompts())

    def _cluster(self, means: torch.Tensor, previous_centroids: torch.Tensor):
        """k-means of ``means`` ``(K, D)`` into ``N`` clusters; with ``K <=
        N`` every class gets its own prompt and the rest stay unassigned."""
        num_seen = means.shape[0]
        if num_seen <= self.num_prompts:
            centroids = previous_centroids.clone()
            centroids[:num_seen] = means
            return torch.arange(num_seen), centroids
        from sklearn.cluster import KMeans
        data = means.double().numpy()
        if self.initialized:
            # Warm start keeps cluster k near the old centroid k, so prompt
            # k keeps (mostly) the same classes across refreshes.
            init, n_init = previous_centroids.double().numpy(), 1
        else:
            init, n_init = 'k-means++', 4
        kmeans = KMeans(n_clusters=self.num_prompts, init=init, n_init=n_init,
                        random_state=self.seed)
        # Single-threaded on purpose: a few hundred points are too little
        # work to split, and sklearn's OpenMP threads calling multi-threaded
        # BLAS, next to torch's own OpenMP pool, oversubscribe the cores. On
        # the 2-core CPU a 1000 x 768 refresh took 0.07-0.7 s depending on
        # other load, single-threaded a steady 0.05 s (docs/performance.md).
        # Thread count only changes floating-point summation order.
        with _single_threaded():
            labels = kmeans.fit_predict(data)
        return (torch.from_numpy(labels.astype(np.int64)),
                torch.from_numpy(kmeans.cluster_centers_).float())
