#!/usr/bin/env python
"""Train one classification config with several seeds and summarise the
runs' reports (mean +- sample std over seeds; the paper reports the mean of
three seeds, App. A.2).

Each seed runs ``tools/train.py CONFIG --work-dir DIR/seed_S --cfg-options
... randomness.seed=S`` in a subprocess; ``ClsReportHook`` (in every
classification config) writes ``DIR/seed_S/davpt_report.json``. The table
gives, per seed and as mean +- std (ddof=1):

(a) the final-epoch test accuracy;
(b) the test accuracy at the epoch chosen on the val split (n/a when the
    run had no held-out val split);
(c) the best test epoch: optimistic, what the authors' released code
    reports.

Usage::

    python tools/run_seeds.py \\
        configs/cls/vtab1k/davpt_vit-b16-in21k_vtab1k-dtd.py \\
        --seeds 0 1 2 --work-dir work_dirs/dtd_seeds \\
        --cfg-options optim_wrapper.optimizer.lr=5e-4
    python tools/run_seeds.py CONFIG --seeds 0 1 2 --dry-run   # commands only
    python tools/run_seeds.py CONFIG --seeds 0 1 2 --collect-only
"""
import argparse
import json
import os.path as osp
import shlex
import subprocess
import sys
from typing import Dict, List

from mmseg_davpt.sweep.stats import mean_std

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPORT = 'davpt_report.json'
# (report key, column title)
NUMBERS = (('final_test', '(a) final epoch'),
           ('selected_test', '(b) selected on val'),
           ('best_test', '(c) best test epoch [optimistic]'))
EPOCH_OF = dict(final_test='final_epoch', selected_test='selected_epoch',
                best_test='best_test_epoch')


def seed_work_dir(work_dir: str, seed: int) -> str:
    return osp.join(work_dir, f'seed_{seed}')


def train_command(config: str, seed: int, work_dir: str,
                  cfg_options: List[str], gpus: int = 1) -> List[str]:
    """The ``tools/train.py`` (or ``dist_train.sh``) command of one seed;
    the seed comes last, so it overrides any ``randomness.seed`` given."""
    options = ['--work-dir', seed_work_dir(work_dir, seed), '--cfg-options',
               *cfg_options, f'randomness.seed={seed}']
    if gpus > 1:
        return ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config,
                str(gpus), *options]
    return [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
            *options]


def load_reports(work_dir: str, seeds: List[int]) -> Dict[int, dict]:
    """``{seed: report}`` from ``work_dir/seed_S/davpt_report.json``."""
    reports = {}
    for seed in seeds:
        path = osp.join(seed_work_dir(work_dir, seed), REPORT)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{path} not found: did seed {seed} finish? (the config '
                f'needs ClsReportHook, e.g. default_hooks.report)')
        with open(path) as f:
            reports[seed] = json.load(f)
        if not reports[seed].get('finished', True):
            raise ValueError(
                f'{path} is partial (the run stopped after epoch '
                f'{reports[seed].get("trained_epochs")}); resume it with '
                f'tools/train.py --resume')
    return reports


#: report fields that must agree for an average over seeds to mean anything
SAME_IN_EVERY_RUN = ('metric', 'trained_epochs', 'splits', 'run')


def check_comparable(reports: Dict[int, dict]) -> None:
    """``ValueError`` naming each report field (config, epochs, data
    roots, config digest...) on which the seeds' runs differ, with each
    seed's value: such runs are not seeds of one experiment."""
    differences = []
    for key in SAME_IN_EVERY_RUN:
        values = {seed: r.get(key, 'not recorded')
                  for seed, r in reports.items()}
        if key == 'run':  # name the sub-field that differs
            fields = sorted({f for v in values.values()
                             if isinstance(v, dict) for f in v})
            for field in fields:
                sub = {s: v.get(field) if isinstance(v, dict) else v
                       for s, v in values.items()}
                if len({json.dumps(x, sort_keys=True) for x in
                        sub.values()}) > 1:
                    differences.append(f'run.{field}: ' + ', '.join(
                        f'seed {s} {x!r}' for s, x in sorted(sub.items())))
            if fields:
                continue
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            differences.append(f'{key}: ' + ', '.join(
                f'seed {s} {v!r}' for s, v in sorted(values.items())))
    if differences:
        raise ValueError(
            'the reports are not runs of one experiment with other seeds; '
            'they differ in ' + '; '.join(differences) + '. Rerun the '
            'differing seeds with the same config and options.')


def aggregate(reports: Dict[int, dict]) -> Dict[str, dict]:
    """Per number (``final_test``, ``selected_test``, ``best_test``): ``n``
    (seeds that have it), ``mean``, ``std`` (ddof=1)."""
    return {key: mean_std([r[key] for r in reports.values()
                           if r.get(key) is not None])
            for key, _ in NUMBERS}


def _cell(report: dict, key: str) -> str:
    if report.get(key) is None:
        return 'n/a'
    return f'{report[key]:.2f} (ep {report[EPOCH_OF[key]]})'


def _summary_cell(stats: dict, seeds: int) -> str:
    if stats['n'] == 0:
        return 'n/a'
    std = 'std n/a' if stats['std'] is None else f'+- {stats["std"]:.2f}'
    text = f'{stats["mean"]:.2f} {std}'
    return text if stats['n'] == seeds else f'{text} ({stats["n"]} seeds)'


def format_table(reports: Dict[int, dict]) -> str:
    """Per-seed rows and a mean +- std row, columns (a), (b), (c)."""
    stats = aggregate(reports)
    metric = next(iter(reports.values())).get('metric', 'accuracy')
    rows = [['seed'] + [title for _, title in NUMBERS]]
    for seed, report in sorted(reports.items()):
        rows.append([str(seed)] + [_cell(report, k) for k, _ in NUMBERS])
    rows.append([f'mean ({len(reports)})'] +
                [_summary_cell(stats[k], len(reports)) for k, _ in NUMBERS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f'test-split {metric} over seeds (std: sample, ddof=1)']
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
              for r in rows]
    reasons = {r.get('selection_unavailable') for r in reports.values()} - \
        {None}
    lines += [f'(b) n/a: {reason}' for reason in sorted(reasons)]
    lines.append('(c) selects the epoch on the test split itself: an '
                 'optimistic number, reported for comparison with the '
                 "authors' released code only")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', help='default: work_dirs/<config '
                        'name>_seeds; each seed in seed_S/ below it')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to every tools/train.py run')
    parser.add_argument('--overwrite-work-dir', action='store_true',
                        help="passed to tools/train.py: start over in seed "
                        "folders holding an earlier run's checkpoints")
    parser.add_argument('--gpus', type=int, default=1,
                        help='> 1: run each seed with tools/dist_train.sh')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--dry-run', action='store_true',
                      help='print the commands, run nothing')
    mode.add_argument('--collect-only', action='store_true',
                      help='train nothing; summarise existing reports')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        name = osp.splitext(osp.basename(args.config))[0]
        args.work_dir = osp.join('work_dirs', f'{name}_seeds')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    commands = [train_command(args.config, seed, args.work_dir,
                              args.cfg_options, args.gpus)
                + (['--overwrite-work-dir'] if args.overwrite_work_dir else [])
                for seed in args.seeds]
    if args.dry_run:
        for command in commands:
            print(shlex.join(command))
        return 0
    if not args.collect_only:
        for seed, command in zip(args.seeds, commands):
            print(f'== seed {seed}: {shlex.join(command)}', flush=True)
            if subprocess.run(command).returncode != 0:
                print(f'error: seed {seed} failed (see '
                      f'{seed_work_dir(args.work_dir, seed)})',
                      file=sys.stderr)
                return 1
    try:
        reports = load_reports(args.work_dir, args.seeds)
        check_comparable(reports)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_table(reports))
    with open(osp.join(args.work_dir, 'seeds_summary.json'), 'w') as f:
        json.dump(dict(seeds=args.seeds, summary=aggregate(reports)), f,
                  indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
