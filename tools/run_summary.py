#!/usr/bin/env python
"""Print one line of a finished run's metrics, read from its work dir:

    python tools/run_summary.py WORK_DIR [--keys mIoU aAcc]

A test run's metrics come from ``WORK_DIR/<timestamp>/<timestamp>.json``, a
training run's from the last validation in
``WORK_DIR/<timestamp>/vis_data/scalars.json`` (newest timestamp first).
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, Sequence


def read_metrics(work_dir: str, keys: Sequence[str]) -> Dict[str, float]:
    """``{key: value}`` for ``keys`` from the newest run in ``work_dir``
    that logged any of them (see the module docstring)."""
    runs = sorted(p for p in glob.glob(osp.join(work_dir, '*'))
                  if osp.isdir(p) and osp.basename(p)[:8].isdigit())
    for run in reversed(runs):
        stamp = osp.basename(run)
        candidates = [osp.join(run, f'{stamp}.json'),
                      osp.join(run, 'vis_data', 'scalars.json')]
        for path in candidates:
            if not osp.isfile(path):
                continue
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            for record in reversed(records):
                found = {k: record[k] for k in keys if k in record}
                if found:
                    return found
    raise FileNotFoundError(f'no run in {work_dir} logged any of '
                            f'{list(keys)}')


def format_metrics(metrics: Dict[str, float]) -> str:
    return ', '.join(f'{k} {v:.2f}' for k, v in metrics.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--keys', nargs='+', default=['mIoU', 'aAcc'])
    args = parser.parse_args(argv)
    try:
        metrics = read_metrics(args.work_dir, args.keys)
    except FileNotFoundError as e:
        sys.exit(str(e))
    print(format_metrics(metrics))
    return metrics


if __name__ == '__main__':
    main()
