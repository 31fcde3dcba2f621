"""Statistics over seeds: mean, sample std, t-intervals, paired
differences."""
import math
from typing import Dict, Mapping, Optional, Sequence


def mean_std(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """``n``, mean and sample std (ddof=1; ``None`` for fewer than 2
    values)."""
    n = len(values)
    if n == 0:
        return dict(n=0, mean=None, std=None)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean)**2 for v in values) / (n - 1)) \
        if n > 1 else None
    return dict(n=n, mean=mean, std=std)


def t_interval(values: Sequence[float],
               level: float = 0.95) -> Dict[str, Optional[float]]:
    """``mean_std`` plus the two-sided Student-t confidence interval of the
    mean, ``mean -+ t_{(1+level)/2, n-1} * std / sqrt(n)`` (``low`` /
    ``high``; ``None`` for fewer than 2 values)."""
    from scipy.stats import t
    stats = dict(mean_std(values), level=level, low=None, high=None)
    if stats['n'] >= 2:
        half = t.ppf((1 + level) / 2, stats['n'] - 1) * stats['std'] / \
            math.sqrt(stats['n'])
        stats.update(low=stats['mean'] - half, high=stats['mean'] + half)
    return stats


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      level: float = 0.95) -> Dict:
    """``a - b`` over the seeds both have (``{seed: score}`` each): the
    per-seed differences and their ``t_interval``."""
    seeds = sorted(set(a) & set(b))
    diffs = {s: a[s] - b[s] for s in seeds}
    return dict(t_interval([diffs[s] for s in seeds], level),
                seeds=seeds, differences=diffs)
