"""Command line of the benchmark suite (``tools/benchmark.py``,
``python -m mmseg_davpt.benchmarks``)."""
import argparse
from typing import List, Optional

import torch

from . import compiled, forward, infer, kmeans, onnx_latency, train

# name -> (module, default warm-up, default repeats)
COMMANDS = {
    'forward': (forward, 1, 9),
    'train': (train, 2, 10),
    'kmeans': (kmeans, 1, 7),
    'infer': (infer, 1, 5),
    'onnx': (onnx_latency, 2, 7),
    'compile': (compiled, 2, 10),
}


def parse_args(argv: Optional[List[str]] = None,
               prog: Optional[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description='DA-VPT benchmark suite: backbone forward, training '
        'step, k-means refresh and slide inference, variants measured side '
        'by side in one process')
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
        p.add_argument('--force', action='store_true',
                       help='replace existing --json / --markdown files')
    args = parser.parse_args(argv)
    from ..utils.output_guard import check_output_file
    for option in ('json', 'markdown'):
        if getattr(args, option):  # before the (long) measurement
            check_output_file(getattr(args, option),
                              getattr(args, 'configs', None) or (),
                              args.force, f'--{option}')
    if args.warmup < 0 or args.repeats < 1:
        parser.error('need --warmup >= 0 and --repeats >= 1')
    if getattr(args, 'img_size', 0) is None:
        # CPU-affordable by default; the real crop on a GPU
        args.img_size = 512 if args.device.startswith('cuda') else 128
    # --dinov2 pads --img-size to its 14 px grid, as DINOv2's 512 px crops
    if args.command == 'forward' and (
            (args.img_size % 16 and not args.dinov2)
            or args.vitb_img_size % 16):
        parser.error('--img-size and --vitb-img-size must be multiples of '
                     'the patch size 16 (--img-size: any size with '
                     '--dinov2)')
    return args


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None):
    """Run one subcommand; returns its ``Report`` (``None`` for internal
    child runs)."""
    args = parse_args(argv, prog)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmseg_davpt  # noqa: F401  (registers our models)
    from mmseg.utils import register_all_modules
    register_all_modules()  # mmseg's, for the forward benchmark's ViT
    report = COMMANDS[args.command][0].run(args)
    if report is not None:
        report.write(args.json, args.markdown)
    return report
