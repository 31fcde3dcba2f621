"""Proxy-NCA loss: an alternative to Proxy-Anchor in the paper's
supplemental study of metric losses (Table 7, "DA-VPT (PNCA)"). The other
one is ``proxy_triplet_loss``.

The paper treats the selected prompts "as individual data points, with class
assignments determined by the current training epoch", i.e. as the proxies
of the classic proxy losses (Movshovitz-Attias et al., ICCV 2017), each
prompt standing for the classes the current mapping assigns to it. Our
reading of the vanilla form, for a sample ``x`` whose class maps to prompt
``y`` and the other assigned prompts ``z``:
``-log(exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z)))`` with
``d`` the squared Euclidean distance of the L2-normalised vectors, averaged
over samples. On the unit sphere ``d = 2 - 2 cos``, so this is a softmax
cross-entropy over ``2 cos`` without the positive in the denominator.

``similarity_scale`` multiplies the normalised prompts as for Proxy-Anchor;
the added ``1 + scale**2`` of the distance cancels in the
ratio, so it acts as an inverse temperature. With a single assigned prompt
there is no negative: the loss is an exact zero that still depends on
the proxies.
"""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from ...utils.registry import also_in_mmpretrain
from .proxy_loss_base import ProxyLossBase, scaled_cosines


def proxy_nca_loss(embeddings: torch.Tensor,
                   labels: torch.Tensor,
                   proxies: torch.Tensor,
                   similarity_scale: float = 1.0) -> torch.Tensor:
    """Vanilla Proxy-NCA of samples ``(M, D)`` with proxy indices ``(M,)``
    against ``proxies`` ``(P, D)`` (see the module docstring); a scalar."""
    cos = scaled_cosines(embeddings, labels, proxies, similarity_scale)
    if cos is None:
        return proxies.sum() * 0.
    logits = 2 * cos
    positive = F.one_hot(labels, proxies.shape[0]).bool()
    negatives = logits.masked_fill(positive, torch.finfo(logits.dtype).min)
    own = logits.gather(1, labels[:, None]).squeeze(1)
    return (torch.logsumexp(negatives, dim=1) - own).mean()


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class ProxyNCALoss(ProxyLossBase):
    """Registered vanilla Proxy-NCA (paper Table 7, "DA-VPT (PNCA)").

    Args:
        similarity_scale: multiplies every cosine (an inverse temperature;
            1 = vanilla).
        loss_weight, loss_name: see ``ProxyAnchorLoss``.
    """

    def __init__(self,
                 similarity_scale: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_proxy_nca'):
        super().__init__(similarity_scale, loss_weight, loss_name)

    def loss(self, embeddings, labels, proxies):
        return proxy_nca_loss(embeddings, labels, proxies,
                              self.similarity_scale)
