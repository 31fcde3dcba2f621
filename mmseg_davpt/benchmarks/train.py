"""``train``: training-step time and training memory of segmentation configs.

Builds every config's model (random weights: nothing is downloaded), feeds
the same synthetic batch (random images, label maps with several classes)
and times full training steps (forward, losses, backward, optimizer step)
round-robin across all variants, so drift in machine load hits all alike.

A variant is a config in one of three modes, sharing the config's model:

* ``base``: fp32, no checkpointing;
* ``cp``: gradient checkpointing of the backbone layers (``with_cp``);
* ``amp``: mixed precision (bf16 ``torch.autocast`` on CPU, fp16 on CUDA).

Memory per variant (one extra step each, not timed):

* ``saved``: bytes autograd keeps for backward (``SavedTensorBytes``; with
  ``cp`` the checkpointed layer inputs, plus the one layer recomputed at a
  time in backward, ``recompute``); ``state``: parameters + gradients +
  optimizer state. ``train memory = saved + recompute + state`` is
  deterministic, unlike anything measured on a shared CPU.
* CUDA: ``torch.cuda.max_memory_allocated`` over the step.
* ``--rss``: peak RSS of a fresh subprocess per variant (build + steps),
  a cross-check that includes allocator overhead, temporaries and the
  runtime (peak over three steps, measured from after the build).
"""
import argparse
import copy
import json
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import DictAction

from .common import (DEFAULT_CONFIGS, Report, SavedTensorBytes, autocast,
                     benchmark_config, build, current_rss_bytes, median,
                     optimizer_state_tensors, paired_ratio,
                     peak_rss_since_reset, reset_peak_rss, round_robin,
                     tensor_bytes)

MODES = ('base', 'cp', 'amp')


def synthetic_batch(batch, img_size, num_classes, device, seed=0):
    """``(inputs (B, 3, S, S), [SegDataSample])``: random images, label maps
    of four random-class quadrants (several classes per image)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, img_size, img_size, generator=g)
    samples = []
    for _ in range(batch):
        lab = torch.randint(0, num_classes, (2, 2), generator=g)
        lab = lab.repeat_interleave(img_size // 2, 0).repeat_interleave(
            img_size // 2, 1)
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=lab[None].to(device))
        s.set_metainfo(dict(img_shape=(img_size, img_size),
                            pad_shape=(img_size, img_size),
                            ori_shape=(img_size, img_size)))
        samples.append(s)
    return inputs.to(device), samples


def set_checkpointing(model, enabled: bool) -> None:
    model.backbone.with_cp = enabled
    for layer in model.backbone.layers:
        layer.with_cp = enabled


def prepare(cfg, args):
    """Build one config's model and batch; DA-VPT models get a class mapping
    first (as the training hook does before iteration 0)."""
    model, optim = build(cfg, args.device)
    inputs, samples = synthetic_batch(args.batch, args.img_size,
                                      model.decode_head.num_classes,
                                      args.device)
    guided = getattr(model, 'metric_guidance', None) is not None
    if guided:
        model.collect_class_features(inputs, samples)
        model.refresh_class_mapping()
    return dict(model=model, optim=optim, inputs=inputs, samples=samples,
                guided=guided,
                trainable=sum(p.numel() for p in model.parameters()
                              if p.requires_grad))


def train_step(run, mode, device):
    """One full step (forward, losses, backward, optimizer step)."""
    model = run['model']
    set_checkpointing(model, mode == 'cp')
    with autocast(device, mode == 'amp'):
        losses = model.loss(run['inputs'], run['samples'])
    loss, _ = model.parse_losses(losses)
    run['optim'].update_params(loss)


def measure_memory(run, mode, device) -> dict:
    """Training memory of one step (see module docstring), in bytes."""
    model, optim = run['model'], run['optim']
    params = list(model.parameters())
    buffers = list(model.buffers())
    layers = model.backbone.layers
    set_checkpointing(model, mode == 'cp')
    optim.zero_grad()
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    handles = []
    with SavedTensorBytes(exclude=params + buffers) as mem:
        if mode == 'cp':
            # non-reentrant checkpointing hides what it saves behind its own
            # hooks; what it keeps across the forward is each layer's input
            for layer in layers:
                handles.append(layer.register_forward_pre_hook(
                    lambda m, i: mem.add(i[0])))
        try:
            with autocast(device, mode == 'amp'):
                losses = model.loss(run['inputs'], run['samples'])
        finally:
            for h in handles:
                h.remove()
    loss, _ = model.parse_losses(losses)
    saved = mem.bytes
    # update_params split up: gradients are freed again by its zero_grad
    optim.backward(loss)
    grads = tensor_bytes(p.grad for p in params if p.grad is not None)
    optim.step()
    optim.zero_grad()
    out = dict(saved=saved,
               params=tensor_bytes(params + buffers),
               grads=grads,
               optim_state=tensor_bytes(
                   optimizer_state_tensors(optim.optimizer)))
    if str(device).startswith('cuda'):
        out['cuda_peak'] = torch.cuda.max_memory_allocated()
    out['recompute'] = 0
    if mode == 'cp':
        # The checkpointed forward shows only the layer inputs; backward
        # recomputes one layer at a time and holds its activations. Their
        # size: the largest per-layer saved bytes of a plain pass.
        set_checkpointing(model, False)
        out['recompute'] = max(layer_saved_bytes(model.backbone,
                                                 run['inputs'],
                                                 params + buffers))
    optim.zero_grad()
    out['state'] = out['params'] + out['grads'] + out['optim_state']
    out['total'] = out['saved'] + out['recompute'] + out['state']
    return out


def layer_saved_bytes(backbone, inputs, exclude) -> list:
    """Bytes newly saved for backward inside each backbone layer (one
    plain, non-checkpointed forward of ``backbone`` on ``inputs``)."""
    per_layer, handles = [], []
    with SavedTensorBytes(exclude=exclude) as mem:
        for layer in backbone.layers:
            handles.append(layer.register_forward_pre_hook(
                lambda m, i: per_layer.append(-mem.bytes)))
            handles.append(layer.register_forward_hook(
                lambda m, i, o: per_layer.__setitem__(
                    -1, per_layer[-1] + mem.bytes)))
        try:
            backbone(inputs)
        finally:
            for h in handles:
                h.remove()
    return per_layer


def rss_child(args) -> dict:
    """In a fresh process: build one variant, run steps, report RSS.

    The peak mark is reset after the build (which peaks higher than
    training: initialisation makes temporary copies), so ``peak`` is the
    peak RSS over the training steps (model, optimizer, activations and the
    Python / torch runtime).
    """
    import gc

    path, mode = args.rss_child.rsplit(':', 1)
    cfg = benchmark_config(path, args.img_size, args.cfg_options)
    run = prepare(cfg, args)
    gc.collect()
    built = current_rss_bytes()
    reset = reset_peak_rss()
    for _ in range(3):
        train_step(run, mode, args.device)
    return dict(after_build=built, peak=peak_rss_since_reset(),
                peak_reset_after_build=reset)


def rss_in_subprocess(path, mode, args) -> dict:
    cmd = [sys.executable, '-m', 'mmseg_davpt.benchmarks', 'train', path,
           '--img-size', str(args.img_size), '--batch', str(args.batch),
           '--device', args.device, '--rss-child', f'{path}:{mode}']
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    if args.cfg_options:
        cmd += ['--cfg-options',
                *(f'{k}={v}' for k, v in args.cfg_options.items())]
    # same working directory: config paths are relative to it
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith('RSS '):
            return json.loads(line[4:])
    raise RuntimeError(f'RSS subprocess failed:\n{out.stderr[-2000:]}')


def mib(n):
    return None if n is None else n / 2**20


def run(args) -> Report:
    if args.rss_child:
        print('RSS ' + json.dumps(rss_child(args)), flush=True)
        return None
    configs = args.configs or DEFAULT_CONFIGS
    modes = list(dict.fromkeys(args.modes))
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f'unknown --modes {bad}; choose from {MODES}')
    variants = []
    for path in configs:
        cfg = benchmark_config(path, args.img_size, args.cfg_options)
        if args.guidance_off_twin and cfg.model.get('metric_guidance'):
            twin = copy.deepcopy(cfg)
            twin.model.metric_guidance = None
            variants.append((f'{path} (guidance off)', twin))
        variants.append((path, cfg))
    report = Report('train', vars(args), args.device)
    runs = []
    for name, cfg in variants:
        runs.append(dict(config=name, **prepare(cfg, args)))

    cases = {}
    for r in runs:
        for mode in modes:
            cases[(r['config'], mode)] = (
                lambda r=r, mode=mode: train_step(r, mode, args.device))
    times = round_robin(cases, args.warmup, args.repeats, args.device)
    memory = {(r['config'], mode): measure_memory(r, mode, args.device)
              for r in runs for mode in modes}
    rss = {}
    if args.rss:
        for name, _ in variants:
            for mode in modes:
                if name.endswith('(guidance off)'):
                    continue
                rss[(name, mode)] = rss_in_subprocess(name, mode, args)

    first = (runs[0]['config'], modes[0])
    base_t = median(times[first])
    base_m = memory[first]['total']
    rows, records = [], []
    for r in runs:
        for mode in modes:
            key = (r['config'], mode)
            med = median(times[key])
            mem = memory[key]
            peak = rss.get(key)
            paired = paired_ratio(times[key], times[first])
            rows.append([
                osp.basename(r['config']), mode,
                f'{r["trainable"] / 1e6:.3f}M', med, med / base_t, paired,
                mib(mem['saved'] + mem['recompute']), mib(mem['state']),
                mib(mem['total']), mem['total'] / base_m,
                mib(mem.get('cuda_peak')),
                mib(peak['peak']) if peak else None
            ])
            records.append(dict(
                config=r['config'], mode=mode, trainable=r['trainable'],
                guided=r['guided'], median_s=med, ratio=med / base_t,
                paired_ratio=paired,
                times_s=times[key], memory_bytes=mem,
                memory_ratio=mem['total'] / base_m, rss_bytes=peak))
    columns = ['config', 'mode', 'trainable', 'step s', 'time ratio',
               'paired ratio',
               'activations MiB', 'params+grads+optim MiB', 'train mem MiB',
               'mem ratio', 'CUDA peak MiB', 'RSS peak MiB']
    report.add_table(
        f'training step, {args.img_size}x{args.img_size}, batch '
        f'{args.batch}, {args.device}, median of {args.repeats} (ratios vs '
        f'{osp.basename(first[0])} {first[1]})', columns, rows, records)
    return report


def add_arguments(parser) -> None:
    parser.add_argument('configs', nargs='*',
                        help=f'configs (default: {" ".join(DEFAULT_CONFIGS)})')
    parser.add_argument('--img-size', type=int, default=None,
                        help='square crop (default 128 on CPU, 512 on CUDA)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--modes', nargs='+', default=['base'],
                        help=f'any of {MODES}: fp32, gradient checkpointing, '
                        'mixed precision')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides applied to every config')
    parser.add_argument(
        '--guidance-off-twin', action='store_true',
        help='also time every DA-VPT config with metric_guidance=None (same '
        'prompt layout): the cost of the guidance alone')
    parser.add_argument('--rss', action='store_true',
                        help='also peak RSS of a subprocess per variant')
    parser.add_argument('--rss-child', help=argparse.SUPPRESS)
