#!/usr/bin/env python
"""Benchmark suite: backbone forward, training step, k-means refresh and
slide inference, each measured side by side in one process.

Subcommands (details in ``benchmarks/<name>.py``):

* ``forward``: our prompted ViT (0 prompts) vs MMSegmentation's ViT with
  the same weights, and the paper's prompt counts vs 0 prompts;
  forward-only and forward+backward.
* ``train``: training-step time and training memory of configs (default:
  VPT, DA-VPT, DA-VPT+, full fine-tuning on ADE20K), optionally with
  gradient checkpointing and mixed precision (``--modes base cp amp``).
* ``kmeans``: class -> prompt mapping refresh time and its share of the
  iterations between two refreshes.
* ``infer``: slide-mode inference throughput (images/s).

Variants run round-robin (drift in machine load hits all alike) after
warm-up; medians and ratios to the first variant are printed and written
with ``--json`` / ``--markdown``. Random weights everywhere (no downloads).
Without a subcommand the arguments go to ``train`` (the former interface).

Examples (CPU; see docs/performance.md for the recorded runs)::

    python tools/benchmark.py forward --threads 2 --json fwd.json
    python tools/benchmark.py train --modes base cp amp --img-size 128
    python tools/benchmark.py train \
        configs/demo/davpt_setr_vit-tiny_shapes-64x64.py \
        --guidance-off-twin --img-size 64 --batch 8 --repeats 50
    python tools/benchmark.py kmeans --markdown kmeans.md
    python tools/benchmark.py infer configs/vpt_setr_ade20k.py --img-size 128
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks import forward, infer, kmeans, train  # noqa: E402

# name -> (module, default warm-up, default repeats)
COMMANDS = {
    'forward': (forward, 1, 9),
    'train': (train, 2, 10),
    'kmeans': (kmeans, 1, 7),
    'infer': (infer, 1, 5),
}


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # former interface: ``benchmark.py CONFIGS... [options]`` is ``train``
    if argv and argv[0] not in COMMANDS and argv[0] not in ('-h', '--help'):
        argv.insert(0, 'train')
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for name, (module, warmup, repeats) in COMMANDS.items():
        p = sub.add_parser(name, help=module.__doc__.split('\n\n')[0],
                           description=module.__doc__)
        module.add_arguments(p)
        p.add_argument('--warmup', type=int, default=warmup)
        p.add_argument('--repeats', type=int, default=repeats)
        p.add_argument('--threads', type=int, default=None,
                       help="torch CPU threads (default: torch's choice)")
        p.add_argument('--device', default='cuda'
                       if torch.cuda.is_available() else 'cpu')
        p.add_argument('--json', help='write results (JSON) here')
        p.add_argument('--markdown', help='write a Markdown table here')
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.repeats < 1:
        parser.error('need --warmup >= 0 and --repeats >= 1')
    if getattr(args, 'img_size', 0) is None:
        # CPU-affordable by default; the real crop on a GPU
        args.img_size = 512 if args.device.startswith('cuda') else 128
    if args.command == 'forward' and (args.img_size % 16
                                      or args.vitb_img_size % 16):
        parser.error('--img-size and --vitb-img-size must be multiples of '
                     'the patch size 16')
    return args


def main(argv=None):
    """Run one subcommand; returns its ``Report`` (``None`` for internal
    child runs)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmseg_davpt  # noqa: F401
    from mmseg.utils import register_all_modules
    register_all_modules()
    report = COMMANDS[args.command][0].run(args)
    if report is not None:
        report.write(args.json, args.markdown)
    return report


if __name__ == '__main__':
    main()
