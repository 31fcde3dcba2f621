"""Pooling runs over seeds: the check that they differ only by seed, the
grid selection, and the per-method summary."""
import math
from typing import Dict, Iterable, List, Optional, Sequence

from .grid import SEED_KEY, format_value
from .stats import t_interval
from .store import first_difference

# Resolved-config keys that differ between any two runs by construction.
RUN_KEYS = ('work_dir', 'experiment_name')
TEST_SELECTION_NOTE = (
    'SELECTED ON THE TEST SPLIT (--select-on-test): the grid point was '
    'chosen on the same split the scores are reported on, so these numbers '
    'are optimistic, not held-out estimates')


class SettingsMismatchError(ValueError):
    """Runs to be pooled over seeds differ in a setting other than the
    seed-dependent ones."""


def _is_seed_key(key: str, seed_keys: Iterable[str]) -> bool:
    return any(key == k or key.startswith(k + '.') for k in seed_keys)


def check_same_settings(records: Sequence[dict],
                        seed_keys: Iterable[str]) -> None:
    """Refuse to pool runs whose resolved configs (``record['resolved']``,
    flat) differ in a key other than ``seed_keys`` (the seed options,
    ``randomness.seed``) and the run's own folder / name.

    Raises:
        SettingsMismatchError: naming the first key that differs and the
            two runs.
    """
    ignore = set(seed_keys) | {SEED_KEY, *RUN_KEYS}
    if not records:
        return
    first = records[0]
    base = {k: v for k, v in first['resolved'].items()
            if not _is_seed_key(k, ignore)}
    for other in records[1:]:
        flat = {k: v for k, v in other['resolved'].items()
                if not _is_seed_key(k, ignore)}
        key = first_difference(base, flat)
        if key is not None:
            raise SettingsMismatchError(
                f'refusing to average runs {first["name"]} and '
                f'{other["name"]}: they differ in {key} '
                f'({base.get(key, "<unset>")!r} vs '
                f'{flat.get(key, "<unset>")!r}), which is not a '
                f'seed-dependent key (seed options: {sorted(ignore)})')


def _score(value: Optional[float]) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def select_point(grid_scores: List[dict]) -> int:
    """Index of the grid point with the highest mean score over seeds
    (``grid_scores[i]['mean']``); ties go to the earliest point in grid
    order; a missing or NaN mean never wins unless all are."""
    best = 0
    for i, entry in enumerate(grid_scores):
        if _score(entry['mean']) > _score(grid_scores[best]['mean']):
            best = i
    return best


def seed_scores(records: Sequence[dict], metric: str) -> Dict[int, float]:
    """``{seed: score}`` of ``metric`` from run records.

    Raises:
        KeyError: a run has no such metric (naming the ones it has).
    """
    scores = {}
    for record in records:
        if metric not in record['metrics']:
            raise KeyError(
                f'run {record["name"]} has no metric {metric!r}; it has '
                f'{sorted(record["metrics"])} (set sweep.metric or --metric)')
        scores[record['seed']] = record['metrics'][metric]
    return scores


def method_summary(name: str, metric: str, selected_on: str,
                   grid_scores: List[dict], chosen: dict,
                   final_records: Sequence[dict],
                   seed_keys: Iterable[str]) -> dict:
    """The summary of one method: chosen values, the test score per seed
    and their mean, sample std, n and 95% t-interval."""
    check_same_settings(final_records, seed_keys)
    scores = seed_scores(final_records, metric)
    summary = dict(
        name=name, metric=metric, selected_on=selected_on,
        chosen=chosen, grid=grid_scores,
        test={str(s): v for s, v in sorted(scores.items())},
        **t_interval([scores[s] for s in sorted(scores)]))
    if selected_on == 'test':
        summary['note'] = TEST_SELECTION_NOTE
    return summary


def format_pm(stats: dict, digits: int = 2) -> str:
    """``mean +- std`` (``std n/a`` for one value)."""
    if stats.get('mean') is None:
        return 'n/a'
    std = 'std n/a' if stats.get('std') is None \
        else f'+- {stats["std"]:.{digits}f}'
    return f'{stats["mean"]:.{digits}f} {std}'


def format_chosen(chosen: dict) -> str:
    return ', '.join(f'{k}={format_value(v)}' for k, v in chosen.items()) \
        or '(no grid)'


def format_summary(summary: dict) -> List[str]:
    """Human-readable lines of one method's summary."""
    lines = [
        f'{summary["name"]}: test {summary["metric"]} '
        f'{format_pm(summary)} (n={summary["n"]}, sample std; seeds '
        f'{", ".join(summary["test"])})',
        f'  chosen on {summary["selected_on"]}: '
        f'{format_chosen(summary["chosen"])}']
    if summary.get('low') is not None:
        lines.append(f'  95% t-interval of the mean: [{summary["low"]:.2f}, '
                     f'{summary["high"]:.2f}]')
    for entry in summary['grid']:
        lines.append(f'  grid {format_chosen(entry["point"])}: '
                     f'{summary["selected_on"]} mean '
                     f'{format_pm(entry, 4)}')
    if summary.get('note'):
        lines.append(f'  {summary["note"]}')
    return lines
