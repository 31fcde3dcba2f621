"""``compile``: a full DA-VPT training step (``model.train_step``: forward,
losses, backward, optimizer step) eager vs ``torch.compile``d, as mmengine
runs it with ``compile=True``.

The compiled step is warmed up first (its compile time is reported), then
eager and compiled steps alternate on the same synthetic batch (paired
ratio: median over rounds of compiled / eager). Also reported: dynamo's
graph count after the warm-up and at the end (equal: no step recompiled)
and the largest difference of the logged losses between the two on the
first step from the same weights.
"""
import copy
import time

import torch
from mmengine.config import DictAction

from .common import (Report, benchmark_config, median, paired_ratio,
                     round_robin)
from .train import prepare

DEFAULT_COMPILE_CONFIG = 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py'


def run(args) -> Report:
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from torch._dynamo.utils import counters
    report = Report('compile', vars(args), args.device)
    cfg = benchmark_config(args.config, args.img_size, args.cfg_options)
    prepared = prepare(cfg, args)
    model = prepared['model']
    for i, s in enumerate(prepared['samples']):  # seeds of the class draw
        s.set_metainfo(dict(img_path=f'synthetic/{i}.png'))
    data = dict(inputs=list(prepared['inputs']),
                data_samples=prepared['samples'])
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    MessageHub.get_current_instance().update_info('iter', 0)
    start = copy.deepcopy(model.state_dict())
    eager_losses = model.train_step(data, optim)
    model.load_state_dict(start)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model.train_step, backend=args.backend)
    tic = time.perf_counter()
    compiled_losses = compiled(data, optim)
    compile_s = time.perf_counter() - tic
    diff = max(abs(float(eager_losses[k]) - float(compiled_losses[k]))
               for k in eager_losses)
    for _ in range(args.warmup):
        compiled(data, optim)
    graphs_warm = counters['stats']['unique_graphs']
    times = round_robin({'eager': lambda: model.train_step(data, optim),
                         'compiled': lambda: compiled(data, optim)},
                        0, args.repeats, args.device)
    graphs_end = counters['stats']['unique_graphs']
    ratio = paired_ratio(times['compiled'], times['eager'])
    row = [args.config.split('/')[-1], args.backend, args.img_size,
           args.batch, compile_s, median(times['eager']),
           median(times['compiled']), ratio, f'{diff:.2g}',
           f'{graphs_warm} -> {graphs_end}']
    report.add_table(
        f'training step, {args.device}, median of {args.repeats} (ratio: '
        'median over rounds of compiled / eager; < 1 = compiled faster)',
        ['config', 'backend', 'img', 'batch', 'compile s', 'eager s',
         'compiled s', 'ratio', 'first-step |loss diff|', 'graphs'],
        [row], [dict(config=args.config, backend=args.backend,
                     compile_s=compile_s, eager_s=times['eager'],
                     compiled_s=times['compiled'], ratio=ratio,
                     loss_diff=diff, graphs_after_warmup=graphs_warm,
                     graphs_end=graphs_end)])
    return report


def add_arguments(parser) -> None:
    parser.add_argument('config', nargs='?', default=DEFAULT_COMPILE_CONFIG)
    parser.add_argument('--img-size', type=int, default=None,
                        help='square crop (default 128 on CPU, 512 on CUDA)')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--backend', default='inductor',
                        help="torch.compile backend ('inductor'; 'eager' "
                        'checks graph capture only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides')
