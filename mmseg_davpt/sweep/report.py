"""Comparing methods swept on the same seeds: a Markdown table, paired
differences with t-intervals, and a plot (mean +- std, seeds as dots)."""
from typing import Dict, List, Sequence, Tuple

from .stats import paired_difference
from .summary import format_chosen, format_pm


def seed_dict(summary: dict) -> Dict[int, float]:
    """``{seed: test score}`` of a method summary."""
    return {int(s): v for s, v in summary['test'].items()}


def methods_table(summaries: Sequence[dict]) -> List[str]:
    """Markdown rows: method, test mean +- sample std, n, the chosen
    values and their pooled selection score."""
    if not summaries:
        return []
    metric = summaries[0]['metric']
    lines = [f'| method | test {metric} (mean +- std) | n | chosen on val '
             f'| val score of the choice |', '|---|---|---|---|---|']
    for s in summaries:
        chosen = next((g for g in s['grid'] if g['point'] == s['chosen']),
                      None)
        val = format_pm(chosen) if chosen else 'no grid'
        where = '' if s['selected_on'] == 'val' else ' (ON TEST)'
        lines.append(f'| {s["name"]} | {format_pm(s)} | {s["n"]} | '
                     f'{format_chosen(s["chosen"])}{where} | {val} |')
    return lines


def paired_rows(summaries: Dict[str, dict],
                pairs: Sequence[Tuple[str, str]]) -> List[dict]:
    """Paired differences ``a - b`` over common seeds for each ``(a, b)``
    present in ``summaries`` (``{method: summary}``)."""
    rows = []
    for a, b in pairs:
        if a in summaries and b in summaries:
            rows.append(dict(a=a, b=b, **paired_difference(
                seed_dict(summaries[a]), seed_dict(summaries[b]))))
    return rows


def paired_table(rows: Sequence[dict]) -> List[str]:
    """Markdown rows of ``paired_rows``: mean difference, its 95%
    t-interval, n, and the per-seed differences."""
    if not rows:
        return []
    lines = ['| difference | mean | 95% t-interval | n | per seed |',
             '|---|---|---|---|---|']
    for r in rows:
        interval = 'n/a (one seed)' if r['low'] is None else \
            f'[{r["low"]:+.2f}, {r["high"]:+.2f}]'
        mean = 'n/a' if r['mean'] is None else f'{r["mean"]:+.2f}'
        per_seed = ', '.join(f'{d:+.1f}' for d in r['differences'].values())
        lines.append(f'| {r["a"]} - {r["b"]} | {mean} | {interval} | '
                     f'{r["n"]} | {per_seed} |')
    return lines


def plot_methods(panels: Sequence[Tuple[str, Sequence[dict]]],
                 path: str) -> str:
    """One panel per ``(title, summaries)``: a bar per method at its mean
    test score with a +- sample-std error bar, each seed's score as a dot.
    Written as PNG to ``path``."""
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(
        1, len(panels), squeeze=False,
        figsize=(1.0 + 0.8 * sum(max(len(s), 2) for _, s in panels), 4.2))
    for ax, (title, summaries) in zip(axes[0], panels):
        for i, s in enumerate(summaries):
            scores = list(seed_dict(s).values())
            ax.bar(i, s['mean'], color='#9ecae1', edgecolor='#3182bd')
            if s['std'] is not None:
                ax.errorbar(i, s['mean'], yerr=s['std'], color='black',
                            capsize=4)
            offsets = np.linspace(-0.2, 0.2, len(scores)) \
                if len(scores) > 1 else [0.]
            ax.scatter(i + np.asarray(offsets), scores, s=12, zorder=3,
                       color='#de2d26')
        ax.set_xticks(range(len(summaries)))
        ax.set_xticklabels([s['name'] for s in summaries], rotation=40,
                           ha='right', fontsize=8)
        ax.set_ylim(0, None)  # bars from zero: differences not inflated
        ax.set_ylabel(f'test {summaries[0]["metric"]}' if summaries else '')
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
