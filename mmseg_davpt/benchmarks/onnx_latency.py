"""``onnx``: inference latency of ONNX Runtime vs PyTorch eager on the
exported graph (``tools/export_onnx.py``: preprocessing + model to logits),
per config at one input size, batch 1, random weights.

Each config is exported to a temporary file, checked for parity (largest
logit difference, share of changed labels) and then timed round-robin with
PyTorch (``torch.no_grad``). Runs on the CPU: ONNX Runtime's CPU execution
provider against torch's CPU kernels, same thread count.
"""
import os.path as osp
import tempfile

import torch

from .common import Report, median, paired_ratio, round_robin

DEFAULT_ONNX_CONFIGS = [
    'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py',
    'configs/cls/vtab1k/davpt_vit-b16-in21k_vtab1k-cifar.py',
]


def build_eval_model(path: str, cfg_options=None):
    """``path``'s model with random weights, in eval mode on the CPU."""
    from mmengine.model import revert_sync_batchnorm

    from ..utils.config import load_config
    from ..utils.model import build_model
    cfg = load_config(path, cfg_options)
    cfg.model.backbone.init_cfg = None  # random weights: timing only
    model = revert_sync_batchnorm(build_model(cfg))
    model.init_weights()
    model.dataset_meta = None
    return model.eval()


def run(args) -> Report:
    from ..deploy import (check_parity, default_input_shape, export_onnx,
                          logits_module, ort_session, sample_pixels)
    report = Report('onnx', vars(args), 'cpu')
    if args.device != 'cpu':
        report.note(f'--device {args.device} ignored: both run on the CPU')
    cases, meta = {}, {}
    tmp = tempfile.TemporaryDirectory(prefix='davpt_onnx_bench_')
    for i, path in enumerate(args.configs or DEFAULT_ONNX_CONFIGS):
        model = build_eval_model(path, args.cfg_options)
        shape = tuple(args.shape or default_input_shape(model))
        out = osp.join(tmp.name, f'{i}.onnx')
        export_onnx(model, out, shape)
        parity = check_parity(model, out, shape)
        pixels = sample_pixels(shape, batch=1, seed=1)
        wrapper = logits_module(model)
        session = ort_session(out)
        feed = {'pixels': pixels.numpy()}
        name = osp.basename(path)

        def eager(w=wrapper, x=pixels):
            with torch.no_grad():
                w(x)

        cases[(name, 'pytorch')] = eager
        cases[(name, 'onnxruntime')] = (
            lambda s=session, f=feed: s.run(None, f))
        meta[name] = dict(shape=shape, parity=parity,
                          params=sum(p.numel() for p in model.parameters()))
    times = round_robin(cases, args.warmup, args.repeats, 'cpu')
    tmp.cleanup()
    rows, records = [], []
    for name, info in meta.items():
        t_pt, t_ort = times[(name, 'pytorch')], times[(name, 'onnxruntime')]
        ratio = paired_ratio(t_ort, t_pt)
        p = info['parity']
        rows.append([name, f'{info["params"] / 1e6:.1f}M',
                     'x'.join(map(str, info['shape'])), median(t_pt) * 1e3,
                     median(t_ort) * 1e3, ratio, f'{p.max_abs_diff:.2g}',
                     f'{p.changed_share:.2%}'])
        records.append(dict(config=name, shape=info['shape'],
                            params=info['params'], pytorch_s=t_pt,
                            onnxruntime_s=t_ort, ratio=ratio,
                            max_abs_diff=p.max_abs_diff,
                            changed_share=p.changed_share))
    report.add_table(
        f'batch-1 latency, CPU, median of {args.repeats} (ratio: median '
        'over rounds of ONNX Runtime / PyTorch; < 1 = ONNX Runtime faster)',
        ['config', 'params', 'input', 'pytorch ms', 'onnxruntime ms',
         'ratio', 'max abs diff', 'labels changed'], rows, records)
    return report


def add_arguments(parser) -> None:
    from mmengine.config import DictAction
    parser.add_argument(
        'configs', nargs='*',
        help=f'configs (default: {" ".join(DEFAULT_ONNX_CONFIGS)})')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: each config\'s, see '
                        'tools/export_onnx.py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides applied to every config')
