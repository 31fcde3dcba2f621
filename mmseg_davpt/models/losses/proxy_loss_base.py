"""What the prompt-proxy losses share: input checks, build-time validation
of their settings, ``loss_weight`` and ``loss_name`` (MMSegmentation's loss
conventions)."""
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_proxy_inputs(embeddings: torch.Tensor, labels: torch.Tensor,
                       proxies: torch.Tensor) -> None:
    """``ValueError`` unless ``embeddings`` ``(M, D)``, ``labels`` ``(M,)`` in
    ``[0, P)`` and ``proxies`` ``(P, D)`` fit together."""
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


def cos_dtype(embeddings: torch.Tensor) -> torch.dtype:
    """The similarities' dtype: float32, or float64 for float64 inputs."""
    return torch.promote_types(embeddings.dtype, torch.float32)


def scaled_cosines(embeddings, labels, proxies, similarity_scale,
                   min_proxies: int = 2):
    """Checked inputs -> ``(M, P)`` cosines times ``similarity_scale`` in
    float32 or better (autocast off), or ``None`` when there is no sample or
    fewer than ``min_proxies`` proxies (Proxy-NCA and triplet need a second
    proxy as the negative)."""
    check_proxy_inputs(embeddings, labels, proxies)
    if embeddings.shape[0] == 0 or proxies.shape[0] < min_proxies:
        return None
    dtype = cos_dtype(embeddings)
    with torch.autocast(embeddings.device.type, enabled=False):
        return F.normalize(embeddings.to(dtype), dim=1) @ (
            F.normalize(proxies.to(dtype), dim=1) * similarity_scale).T


class ProxyLossBase(nn.Module):
    """Base of the losses between samples and prompt proxies.

    Subclasses implement ``loss(embeddings, labels, proxies)`` (unweighted).

    Args:
        similarity_scale: multiplies the normalised proxies, hence every
            cosine similarity, before the loss's own scale and margin apply.
        loss_weight: factor of the returned loss.
        loss_name: key of the term in the loss dict.
    """

    def __init__(self, similarity_scale: float, loss_weight: float,
                 loss_name: str):
        super().__init__()
        name = type(self).__name__
        if similarity_scale < 0:
            raise ValueError(f'{name}: similarity_scale must be >= 0, got '
                             f'similarity_scale={similarity_scale}')
        if similarity_scale == 0:
            warnings.warn(
                f'{name}: similarity_scale=0 makes every similarity zero, so '
                'the loss is a constant and guides nothing')
        if loss_weight < 0:
            raise ValueError(f'{name}: loss_weight must be >= 0, got '
                             f'loss_weight={loss_weight}; a negative weight '
                             'rewards the loss it should minimise')
        if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
            raise ValueError(f"{name}: loss_name must start with 'loss_' "
                             f'(else it is logged but not optimised), got '
                             f'loss_name={loss_name!r}')
        self.similarity_scale = float(similarity_scale)
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Key of this term in the loss dict (MMSegmentation convention)."""
        return self._loss_name

    def check_margin(self, margin: float) -> float:
        """``margin`` if it lies in ``[0, max(1, similarity_scale)]`` (the
        range of the scaled cosines), else a ``ValueError`` naming it."""
        upper = max(1.0, self.similarity_scale)
        if not 0 <= margin <= upper:
            raise ValueError(
                f'{type(self).__name__}: margin={margin} is outside '
                f'[0, {upper:g}], the range of the (scaled) cosine '
                'similarities it offsets')
        return float(margin)

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor,
             proxies: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                proxies: torch.Tensor) -> torch.Tensor:
        """Weighted loss of samples ``(M, D)`` with proxy indices ``(M,)``
        against ``proxies`` ``(P, D)``; a scalar."""
        return self.loss_weight * self.loss(embeddings, labels, proxies)

    def extra_repr(self) -> str:
        return (f'similarity_scale={self.similarity_scale}, '
                f'loss_weight={self.loss_weight}, '
                f'loss_name={self.loss_name!r}')
