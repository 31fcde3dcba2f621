"""Stop training at the first non-finite loss term, before the optimizer
step, naming the term and the iteration."""
from typing import Dict, Tuple

import torch
from mmengine.logging import MessageHub


class FiniteLossMixin:
    """Mixed in before an mmengine ``BaseModel``; expects
    ``self.check_finite_loss`` (bool)."""

    def parse_losses(self, losses: Dict) -> Tuple[torch.Tensor, Dict]:
        """``BaseModel.parse_losses`` plus the non-finite-loss guard."""
        if self.check_finite_loss:
            for name, value in losses.items():
                if 'loss' not in name:
                    continue
                for v in (value if isinstance(value, list) else [value]):
                    if not torch.isfinite(v).all():
                        it = MessageHub.get_current_instance().get_info(
                            'iter')
                        raise FloatingPointError(
                            f'non-finite {name} ({v.detach().sum().item()}) '
                            f'at iteration {it} (0-based); training stopped '
                            'before the optimizer step. Set '
                            'model.check_finite_loss=False to leave it to '
                            'the optimizer wrapper.')
        return super().parse_losses(losses)
