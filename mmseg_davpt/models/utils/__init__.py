from .finite_loss import FiniteLossMixin
from .init_log import SummaryInitLogMixin

__all__ = ['FiniteLossMixin', 'SummaryInitLogMixin']
