"""The per-task protocol as a library: grid on train/val, choice on val,
final training on train+val, one test per seed, summary over seeds
(``tools/sweep.py`` is its command line; docs/sweep.md)."""
from .grid import expand_grid, point_name, seed_overrides
from .parallel import run_sweeps
from .protocol import Progress, Sweep, SweepSpec, run_sweep, spec_from_config
from .stats import mean_std, paired_difference, t_interval
from .store import RunStore, StaleRunError
from .summary import (SettingsMismatchError, check_same_settings,
                      format_summary, select_point)

__all__ = [
    'expand_grid', 'point_name', 'seed_overrides', 'Progress', 'Sweep',
    'SweepSpec', 'run_sweep', 'run_sweeps', 'spec_from_config', 'mean_std',
    'paired_difference', 't_interval', 'RunStore', 'StaleRunError',
    'SettingsMismatchError', 'check_same_settings', 'format_summary',
    'select_point'
]
