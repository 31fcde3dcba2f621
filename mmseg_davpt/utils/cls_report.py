"""The classification reporting protocol, as plain functions over the
per-epoch table ``[{'epoch': int, 'val': float | None, 'test': float}]``.

Three numbers per run, all test-split accuracies:

(a) ``final``: the last evaluated epoch;
(b) ``selected``: the epoch with the highest *validation* accuracy (ties
    go to the earliest such epoch), the held-out choice;
(c) ``best_test``: the epoch with the highest *test* accuracy (ties: the
    earliest). This is what the DA-VPT authors' released code reports (a
    running maximum of per-epoch test accuracy, one seed); it selects on
    the test set and is therefore optimistic.
"""
from typing import Dict, List, Optional, Sequence

SELECTION_RULE = ('highest val; ties go to the earliest epoch')
BEST_TEST_NOTE = ('OPTIMISTIC: epoch chosen on the test split itself (what '
                  "the authors' released code reports); not a held-out "
                  'estimate')


def _first_max(rows: Sequence[dict], key: str) -> dict:
    # max() keeps the first of equal maxima, and rows are in epoch order
    return max(rows, key=lambda row: row[key])


def summarise_epochs(rows: Sequence[dict],
                     metric: str = 'accuracy/top1',
                     selection_unavailable: Optional[str] = None) -> Dict:
    """The report of one run from its per-epoch table.

    Args:
        rows: ``{'epoch', 'val', 'test'}`` per evaluated epoch, any order.
        metric: Name of the metric the numbers are (for the report).
        selection_unavailable: Why (b) cannot be given (e.g. the val split
            is the test split, or val images are training images); ``None``
            when the val column is a held-out split.

    Returns:
        dict with ``final_epoch`` / ``final_test`` (a), ``selected_epoch``
        / ``selected_val`` / ``selected_test`` (b, ``None`` when
        unavailable), ``best_test_epoch`` / ``best_test`` (c), the rules,
        and the sorted table under ``epochs``.
    """
    if not rows:
        raise ValueError('no evaluated epochs to report')
    rows = sorted((dict(row) for row in rows), key=lambda row: row['epoch'])
    final, best = rows[-1], _first_max(rows, 'test')
    report = dict(
        metric=metric,
        final_epoch=final['epoch'],
        final_test=final['test'],
        selected_epoch=None,
        selected_val=None,
        selected_test=None,
        selection_rule=SELECTION_RULE,
        selection_unavailable=selection_unavailable,
        best_test_epoch=best['epoch'],
        best_test=best['test'],
        best_test_note=BEST_TEST_NOTE,
        epochs=rows)
    if selection_unavailable is None:
        if any(row['val'] is None for row in rows):
            raise ValueError('a row has no val value; pass '
                             'selection_unavailable to report without (b)')
        chosen = _first_max(rows, 'val')
        report.update(selected_epoch=chosen['epoch'],
                      selected_val=chosen['val'],
                      selected_test=chosen['test'])
    return report


def format_report(report: Dict) -> List[str]:
    """Log lines for a report made by :func:`summarise_epochs`."""
    metric = report['metric']
    lines = [
        f'DA-VPT report (test split, {metric})',
        f'  (a) final epoch {report["final_epoch"]}: '
        f'{report["final_test"]:.2f}',
    ]
    if report['selected_epoch'] is None:
        lines.append('  (b) selected on val: not available: '
                     f'{report["selection_unavailable"]}')
    else:
        lines.append(f'  (b) selected on val (epoch '
                     f'{report["selected_epoch"]}, val '
                     f'{report["selected_val"]:.2f}; '
                     f'{report["selection_rule"]}): '
                     f'{report["selected_test"]:.2f}')
    lines.append(f'  (c) best test epoch {report["best_test_epoch"]}: '
                 f'{report["best_test"]:.2f}  [{report["best_test_note"]}]')
    if report.get('test_overlap'):
        lines.append(f'  warning: {report["test_overlap"]}: the test split '
                     'is not held out')
    return lines
