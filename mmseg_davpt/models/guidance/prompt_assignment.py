"""How a refresh assigns the classes it saw to prompts (paper Sec. 3.4):
pure functions over the previous mapping and the new class means."""
from typing import Tuple

import numpy as np
import torch

from .sentinels import NO_PROMPT

_THREADPOOLS = None


def _single_threaded():
    """Context running BLAS and OpenMP (scikit-learn's) on one thread.

    The threadpoolctl controller (shipped with scikit-learn) is made once,
    on the first k-means, after scikit-learn is imported: scanning the
    loaded libraries costs ~2 ms, re-limiting them ~0.03 ms.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def assign_seen_classes(mapping: torch.Tensor, seen: torch.Tensor,
                        means: torch.Tensor, centroids: torch.Tensor,
                        warm_start: bool,
                        seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """New ``(mapping (C,), centroids (N, D))`` after a refresh (CPU).

    Classes not in ``seen`` keep their prompt. The seen classes (``seen``
    ``(K,)`` ids, ``means`` ``(K, D)`` L2-normalised) are placed so that two
    classes never share a prompt while a prompt is free:

    * if the prompts that no unseen class holds are at least ``K``, every
      seen class gets one of them to itself, keeping its previous prompt when
      it can (a refresh that saw only some classes must not hand a seen class
      the prompt of an unseen one);
    * else, with ``K <= N``, the free prompts go to seen classes and the rest
      join the prompt of the nearest centroid;
    * else (``K > N``) k-means into ``N`` clusters, warm-started from the
      previous centroids so prompt ``k`` keeps (mostly) the same classes.
    """
    mapping, centroids = mapping.clone(), centroids.clone()
    num_prompts = centroids.shape[0]
    unseen = torch.ones_like(mapping, dtype=torch.bool)
    unseen[seen] = False
    held = set(mapping[unseen & (mapping != NO_PROMPT)].tolist())
    free = [p for p in range(num_prompts) if p not in held]
    num_seen = len(seen)
    if num_seen > num_prompts:
        assign, centroids = _kmeans(means, centroids, warm_start, seed)
        mapping[seen] = assign
        return _fill_free_prompts(mapping, seen, num_prompts), centroids
    previous = mapping[seen].tolist()
    assign = [NO_PROMPT] * num_seen
    for i, p in enumerate(previous):  # keep a free previous prompt
        if p in free:
            assign[i] = p
            free.remove(p)
    for i in range(num_seen):
        if assign[i] == NO_PROMPT and free:
            assign[i] = free.pop(0)
    own = torch.tensor([a != NO_PROMPT for a in assign], dtype=torch.bool)
    assign = torch.tensor(assign, dtype=torch.long)
    if (~own).any():
        nearest = means[~own] @ torch.nn.functional.normalize(
            centroids, dim=1).T
        assign[~own] = nearest.argmax(1)
    centroids[assign[own]] = means[own]
    mapping[seen] = assign
    return mapping, centroids


def _kmeans(means: torch.Tensor, centroids: torch.Tensor, warm_start: bool,
            seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    from sklearn.cluster import KMeans
    if warm_start:
        init, n_init = centroids.double().numpy(), 1
    else:
        init, n_init = 'k-means++', 4
    kmeans = KMeans(n_clusters=centroids.shape[0], init=init, n_init=n_init,
                    random_state=seed)
    # Single-threaded on purpose: a few hundred points are too little work
    # to split, and sklearn's OpenMP threads calling multi-threaded BLAS,
    # next to torch's own OpenMP pool, oversubscribe the cores. On the
    # 2-core CPU a 1000 x 768 refresh took 0.07-0.7 s depending on other
    # load, single-threaded a steady 0.05 s (docs/performance.md). Thread
    # count only changes floating-point summation order.
    with _single_threaded():
        labels = kmeans.fit_predict(means.double().numpy())
    return (torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(kmeans.cluster_centers_).float())


def _fill_free_prompts(mapping: torch.Tensor, seen: torch.Tensor,
                       num_prompts: int) -> torch.Tensor:
    """Move seen classes off shared prompts onto free ones (k-means with
    duplicate class means can leave a cluster empty)."""
    while True:
        counts = torch.bincount(mapping[mapping != NO_PROMPT],
                                minlength=num_prompts)
        free = [p for p in range(num_prompts) if counts[p] == 0]
        shared = [c for c in seen.tolist()
                  if mapping[c] != NO_PROMPT and counts[mapping[c]] > 1]
        if not free or not shared:
            return mapping
        mapping[shared[-1]] = free[0]
