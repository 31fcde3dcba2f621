#!/usr/bin/env python
"""Run the per-task protocol on a config: a grid on train/val, the choice on
val (pooled over seeds), a final training per seed with the chosen values
(on train+val, or whatever the final options say), one test per seed, and
a summary (mean, sample std, n, 95% t-interval, chosen values).

    python tools/sweep.py CONFIG --work-dir DIR
        [--grid KEY=v1,v2 ...] [--seeds 0 1 2]
        [--seed-options KEY=TEMPLATE{seed} ...] [--final-options KEY=V ...]
        [--metric NAME] [--select-on-test] [--cfg-options KEY=V ...]

Defaults come from the config's ``sweep = dict(metric=..., grid=...,
seed_options=..., final_options=..., seeds=...)``; ``--grid`` replaces its
grid, ``--seed-options`` / ``--final-options`` update its entries.
Interrupted sweeps resume: finished runs (``runs/.../result.json``) are
not redone, a run killed mid-way is redone. See docs/sweep.md.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='default: work_dirs/<config '
                        'name>_sweep')
    parser.add_argument('--grid', nargs='+', action=DictAction,
                        metavar='KEY=V1,V2',
                        help="the grid (replaces the config's sweep.grid)")
    parser.add_argument('--seeds', type=int, nargs='+')
    parser.add_argument('--seed-options', nargs='+', action=DictAction,
                        metavar='KEY=TEMPLATE',
                        help='config keys that follow the seed; {seed} is '
                        'replaced, e.g. train_dataloader.dataset.data_root='
                        'data/x/seed{seed}')
    parser.add_argument('--final-options', nargs='+', action=DictAction,
                        metavar='KEY=V', help='overrides of the final runs, '
                        'e.g. train_dataloader.dataset.split=train800val200')
    parser.add_argument('--metric', help='val / test metric selected on and '
                        'reported, e.g. accuracy/top1 or mIoU')
    parser.add_argument('--select-on-test', action='store_true',
                        help='score the grid on the test split and choose '
                        'there (optimistic; the summary says so)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        metavar='KEY=V', help='overrides of every run')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        name = osp.splitext(osp.basename(args.config))[0]
        args.work_dir = osp.join('work_dirs', f'{name}_sweep')
    return args


def as_grid(grid):
    """DictAction gives a scalar for ``KEY=V``: a one-value grid axis."""
    if grid is None:
        return None
    return {k: v if isinstance(v, list) else [v] for k, v in grid.items()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmseg_davpt.sweep import Sweep, format_summary, spec_from_config
    from mmseg_davpt.sweep.protocol import default_executor
    from tools.train import check_train_split
    spec = spec_from_config(
        args.config, args.work_dir, seeds=args.seeds,
        grid=as_grid(args.grid), seed_options=args.seed_options,
        final_options=args.final_options, metric=args.metric,
        select_on_test=args.select_on_test,
        cfg_options=args.cfg_options or {})
    print(f'{spec.name}: {len(spec.points)} grid point(s) x '
          f'{len(spec.seeds)} seed(s) -> {spec.num_runs} runs in '
          f'{spec.work_dir}', flush=True)
    summary = Sweep(spec, execute=default_executor(check_train_split)).run()
    print('\n'.join(format_summary(summary)))
    return summary


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    main()
