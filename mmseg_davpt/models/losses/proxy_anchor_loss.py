"""Proxy-Anchor loss (Kim et al., CVPR 2020), DA-VPT's Eq. 4."""
import torch
import torch.nn.functional as F


def proxy_anchor_loss(embeddings: torch.Tensor,
                      labels: torch.Tensor,
                      proxies: torch.Tensor,
                      margin: float = 0.1,
                      alpha: float = 32.0) -> torch.Tensor:
    """Proxy-Anchor loss between samples and proxies under cosine similarity.

    ``L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x,p) - margin)))
        + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x,p) + margin)))``

    with ``P+`` the proxies that have a positive sample in the batch.

    Args:
        embeddings: samples ``(M, D)``.
        labels: ``(M,)`` int64 proxy index of each sample, in ``[0, P)``.
        proxies: ``(P, D)``.
        margin: ``delta`` in the paper (0.1).
        alpha: scale / inverse temperature (32).
    Returns:
        Scalar loss, computed in float32 (float64 inputs stay float64). Each
        ``log(1 + sum exp(.))`` is a log-sum-exp with a zero term, so it is
        finite for any input; with no samples it is an exact zero that still
        depends on ``proxies`` (no NaN, the graph stays connected).
    """
    if embeddings.ndim != 2 or proxies.ndim != 2 or \
            embeddings.shape[1] != proxies.shape[1]:
        raise ValueError(
            f'embeddings (M, D) and proxies (P, D) must share D; got '
            f'{tuple(embeddings.shape)} and {tuple(proxies.shape)}')
    if labels.shape != embeddings.shape[:1]:
        raise ValueError(f'labels must have shape ({embeddings.shape[0]},), '
                         f'got {tuple(labels.shape)}')
    num_proxies = proxies.shape[0]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_proxies):
        raise ValueError(f'labels must lie in [0, {num_proxies}), got range '
                         f'[{labels.min().item()}, {labels.max().item()}]')
    dtype = torch.promote_types(embeddings.dtype, torch.float32)
    embeddings = embeddings.to(dtype)
    proxies = proxies.to(dtype)
    if embeddings.shape[0] == 0:
        return proxies.sum() * 0.
    # autocast would run the similarity matmul in fp16; keep float32.
    with torch.autocast(embeddings.device.type, enabled=False):
        return _proxy_anchor(embeddings, labels, proxies, margin, alpha)


def _proxy_anchor(embeddings, labels, proxies, margin, alpha):
    num_proxies = proxies.shape[0]
    dtype = embeddings.dtype
    cos = F.normalize(embeddings, dim=1) @ F.normalize(proxies, dim=1).T
    positive = F.one_hot(labels, num_proxies).bool()  # (M, P)
    neg_inf = torch.finfo(dtype).min
    pos_logits = torch.where(positive, -alpha * (cos - margin), neg_inf)
    neg_logits = torch.where(positive, neg_inf, alpha * (cos + margin))
    zero = cos.new_zeros(1, num_proxies)
    # log(1 + sum_x exp(z)) == logsumexp over {0} U {z}, per proxy.
    pos_term = torch.logsumexp(torch.cat([zero, pos_logits]), dim=0)
    neg_term = torch.logsumexp(torch.cat([zero, neg_logits]), dim=0)
    has_positive = positive.any(dim=0)
    num_with_positive = has_positive.sum().clamp(min=1)
    return (pos_term * has_positive).sum() / num_with_positive + \
        neg_term.sum() / num_proxies
