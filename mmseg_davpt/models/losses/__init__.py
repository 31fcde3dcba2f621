from .proxy_anchor_loss import ProxyAnchorLoss, proxy_anchor_loss
from .proxy_nca_loss import ProxyNCALoss, proxy_nca_loss
from .proxy_triplet_loss import ProxyTripletLoss, proxy_triplet_loss

__all__ = [
    'ProxyAnchorLoss', 'ProxyNCALoss', 'ProxyTripletLoss', 'proxy_anchor_loss',
    'proxy_nca_loss', 'proxy_triplet_loss'
]
