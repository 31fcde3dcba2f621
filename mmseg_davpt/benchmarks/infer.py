"""``infer``: inference throughput (images/s) of whole segmentors in slide
mode (``model.predict`` with the configs' ``test_cfg.mode='slide'``).

Synthetic images of ``H x W`` (default: crop x 4/3 crop, the aspect ratio
of a typical ADE20K image after its 512-short-side resize, so a row of two
overlapping windows is run per image) at the configs' window and stride
scaled to the crop (``stride = 2/3 crop``, as 341/512).
"""
import os.path as osp

import torch
from mmengine.config import DictAction

from .common import (DEFAULT_CONFIGS, Report, autocast, benchmark_config,
                     build, median, round_robin)


def synthetic_images(batch, height, width, device, seed=0):
    """``(inputs (B, 3, H, W), [SegDataSample])`` with image metainfo."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, height, width, generator=g)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(height, width),
                            pad_shape=(height, width),
                            ori_shape=(height, width)))
        samples.append(s)
    return inputs.to(device), samples


def windows(height, width, crop, stride) -> int:
    """Number of slide windows mmseg runs on an ``H x W`` image."""
    rows = max(height - crop[0] + stride[0] - 1, 0) // stride[0] + 1
    cols = max(width - crop[1] + stride[1] - 1, 0) // stride[1] + 1
    return rows * cols


def run(args) -> Report:
    configs = args.configs or DEFAULT_CONFIGS
    height = args.height or args.img_size
    width = args.width or args.img_size * 4 // 3
    report = Report('infer', vars(args), args.device)
    models = {}
    for path in configs:
        cfg = benchmark_config(path, args.img_size, args.cfg_options)
        if cfg.model.test_cfg.get('mode') != 'slide':
            raise ValueError(f'{path}: test_cfg.mode is '
                             f'{cfg.model.test_cfg.get("mode")!r}, not slide')
        model, _ = build(cfg, args.device)
        model.eval()
        models[path] = model
    test_cfg = next(iter(models.values())).test_cfg
    nwin = windows(height, width, test_cfg.crop_size, test_cfg.stride)
    inputs, samples = synthetic_images(args.batch, height, width, args.device)
    report.note(
        f'{height}x{width} images, batch {args.batch}, slide window '
        f'{tuple(test_cfg.crop_size)} stride {tuple(test_cfg.stride)}: '
        f'{nwin} windows per image.')

    cases = {}
    for path, model in models.items():
        for mode in args.modes:

            def fn(model=model, mode=mode):
                with torch.no_grad(), autocast(args.device, mode == 'amp'):
                    model.predict(inputs, samples)

            cases[(path, mode)] = fn
    times = round_robin(cases, args.warmup, args.repeats, args.device)
    first = next(iter(cases))
    base = args.batch / median(times[first])
    rows, records = [], []
    for (path, mode), ts in times.items():
        med = median(ts)
        ips = args.batch / med
        rows.append([osp.basename(path), mode, med, ips, ips / base])
        records.append(dict(config=path, mode=mode, median_s=med,
                            images_per_s=ips, ratio=ips / base,
                            windows_per_image=nwin, times_s=ts))
    report.add_table(
        f'slide inference, {args.device}, median of {args.repeats} '
        f'(ratio: throughput vs {osp.basename(first[0])} {first[1]})',
        ['config', 'mode', 'batch s', 'images/s', 'ratio'], rows, records)
    return report


def add_arguments(parser) -> None:
    parser.add_argument('configs', nargs='*',
                        help=f'configs (default: {" ".join(DEFAULT_CONFIGS)})')
    parser.add_argument('--img-size', type=int, default=None,
                        help='slide window (default 128 on CPU, 512 on CUDA)')
    parser.add_argument('--height', type=int, default=None)
    parser.add_argument('--width', type=int, default=None)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--modes', nargs='+', default=['base'],
                        choices=['base', 'amp'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides applied to every config')
