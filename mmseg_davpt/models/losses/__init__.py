from .proxy_anchor_loss import proxy_anchor_loss

__all__ = ['proxy_anchor_loss']
