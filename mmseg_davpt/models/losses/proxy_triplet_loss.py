"""Proxy-triplet loss: the triplet alternative to Proxy-Anchor in the paper's
supplemental study of metric losses (Table 7, "DA-VPT (triplet)").

Prompts are the proxies, each standing for the classes the current mapping
assigns to it (see ``proxy_nca_loss``). Our reading of the vanilla form, for
a sample ``x`` whose class maps to prompt ``y``: anchor ``x``, positive
``p_y``, negatives every other assigned prompt ``p_z``, hinge
``max(0, s(x, p_z) - s(x, p_y) + margin)`` on the (scaled) cosine similarity,
averaged over all (sample, negative prompt) triplets. With a single assigned
prompt there is no triplet: the loss is an exact zero that still depends on
the proxies.
"""
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from ...utils.registry import also_in_mmpretrain
from .proxy_loss_base import ProxyLossBase, scaled_cosines


def proxy_triplet_loss(embeddings: torch.Tensor,
                       labels: torch.Tensor,
                       proxies: torch.Tensor,
                       margin: float = 0.1,
                       similarity_scale: float = 1.0) -> torch.Tensor:
    """Proxy-triplet hinge of samples ``(M, D)`` with proxy indices ``(M,)``
    against ``proxies`` ``(P, D)`` (see the module docstring); a scalar."""
    cos = scaled_cosines(embeddings, labels, proxies, similarity_scale)
    if cos is None:
        return proxies.sum() * 0.
    own = cos.gather(1, labels[:, None])
    hinge = F.relu(cos - own + margin)
    negative = ~F.one_hot(labels, proxies.shape[0]).bool()
    return (hinge * negative).sum() / negative.sum()


@also_in_mmpretrain('MODELS')
@MODELS.register_module()
class ProxyTripletLoss(ProxyLossBase):
    """Registered proxy-triplet loss (paper Table 7, "DA-VPT (triplet)").

    Args:
        margin: hinge margin, in ``[0, max(1, similarity_scale)]``.
        similarity_scale, loss_weight, loss_name: see ``ProxyAnchorLoss``.
    """

    def __init__(self,
                 margin: float = 0.1,
                 similarity_scale: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_proxy_triplet'):
        super().__init__(similarity_scale, loss_weight, loss_name)
        self.margin = self.check_margin(margin)

    def loss(self, embeddings, labels, proxies):
        return proxy_triplet_loss(embeddings, labels, proxies, self.margin,
                                  self.similarity_scale)

    def extra_repr(self) -> str:
        return f'margin={self.margin}, ' + super().extra_repr()
