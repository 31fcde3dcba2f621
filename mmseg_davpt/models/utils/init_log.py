"""One log line for ``init_weights`` instead of mmengine's entry per
parameter."""
from mmengine.dist import is_main_process
from mmengine.logging import print_log


class SummaryInitLogMixin:
    """Mixed in before an mmengine ``BaseModule``."""

    def _dump_init_info(self) -> None:
        """Log one line for ``init_weights`` instead of mmengine's entry per
        parameter (``BaseModule._dump_init_info``: ~500 KB for a ViT-L,
        written into the run's log file or onto the console)."""
        if not is_main_process():
            return
        info = getattr(self, '_params_init_info', {})
        params = list(self.parameters())
        unchanged = sum(
            1 for p in params
            if 'same before and after' in info.get(p, {}).get('init_info', ''))
        print_log(
            f'{type(self).__name__}.init_weights: {len(params) - unchanged} '
            f'of {len(params)} parameter tensors '
            f'({sum(p.numel() for p in params) / 1e6:.2f}M values) set, '
            f'{unchanged} kept their constructor values (per-parameter '
            'details not logged)', logger='current')
