"""Proxy-Anchor loss (Kim et al., CVPR 2020), DA-VPT's Eq. 4 and Eq. 5."""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from ...utils.registry import also_in_mmpretrain
from .proxy_loss_base import ProxyLossBase, cos_dtype, scaled_cosines


def proxy_anchor_loss(embeddings: torch.Tensor,
                      labels: torch.Tensor,
                      proxies: torch.Tensor,
                      margin: float = 0.1,
                      alpha: float = 32.0,
                      similarity_scale: float = 1.0) -> torch.Tensor:
    """Proxy-Anchor loss between samples and proxies under cosine similarity.

    ``L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x,p) - margin)))
        + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x,p) + margin)))``

    with ``s(x, p) = similarity_scale * cos(x, p)`` and ``P+`` the proxies
    that have a positive sample in the batch.

    Args:
        embeddings: samples ``(M, D)``.
        labels: ``(M,)`` int64 proxy index of each sample, in ``[0, P)``.
        proxies: ``(P, D)``.
        margin: ``delta`` in the paper (0.1).
        alpha: scale / inverse temperature (32).
        similarity_scale: multiplies the normalised proxies, so every cosine
            before ``alpha`` and ``margin`` apply (1 = the paper's Eq. 4).
    Returns:
        Scalar loss, computed in float32 (float64 inputs stay float64). Each
        ``log(1 + sum exp(.))`` is a log-sum-exp with a zero term, so it is
        finite for any input; with no samples it is an exact zero that still
        depends on ``proxies`` (no NaN, the graph stays connected).
    """
    cos = scaled_cosines(embeddings, labels, proxies, similarity_scale,
                         min_proxies=1)
    if cos is None:
        return proxies.to(cos_dtype(embeddings)).sum() * 0.
    return _proxy_anchor(cos, labels, margin, alpha)


def _proxy_anchor(cos, labels, margin, alpha):
    num_proxies = cos.shape[1]
    positive = F.one_hot(labels, num_proxies).bool()  # (M, P)
    neg_inf = torch.finfo(cos.dtype).min
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


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class ProxyAnchorLoss(ProxyLossBase):
    """Registered Proxy-Anchor loss, configured like MMSegmentation's losses.

    ``forward(embeddings (M, D), labels (M,), proxies (P, D))`` returns
    ``loss_weight * proxy_anchor_loss(...)`` (a scalar).

    Args:
        margin: Proxy-Anchor ``delta``, in ``[0, max(1, similarity_scale)]``
            (paper: 0.1).
        alpha: scale ``alpha`` > 0 (paper: 32).
        similarity_scale: multiplies every cosine before ``alpha`` and
            ``margin`` (>= 0; 1 = the paper's Eq. 4; 0 makes the loss a
            constant and is accepted with a warning).
        loss_weight: ``beta`` / ``lambda`` of Eq. 5 (>= 0).
        loss_name: key of the term in the loss dict; must start with
            ``loss_`` to be optimised.
    """

    def __init__(self,
                 margin: float = 0.1,
                 alpha: float = 32.0,
                 similarity_scale: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_proxy_anchor'):
        super().__init__(similarity_scale, loss_weight, loss_name)
        self.margin = self.check_margin(margin)
        if not alpha > 0:
            raise ValueError(f'{type(self).__name__}: alpha must be > 0, got '
                             f'alpha={alpha}')
        self.alpha = float(alpha)

    def loss(self, embeddings, labels, proxies):
        return proxy_anchor_loss(embeddings, labels, proxies, self.margin,
                                 self.alpha, self.similarity_scale)

    def extra_repr(self) -> str:
        return (f'margin={self.margin}, alpha={self.alpha}, '
                + super().extra_repr())
