#!/usr/bin/env python
"""Side-by-side training-step timing of segmentation configs.

Builds every config's model (random weights: nothing is downloaded), feeds
the same synthetic batch (random images, label maps with several classes),
and times full training steps (forward, losses, backward, optimizer step)
round-robin across the models, so drift in machine load hits all alike.
Reports the median per model and its ratio to the first config.

Examples (ViT-L/16 at 128x128 on CPU, VPT vs DA-VPT vs DA-VPT+; the cost of
the metric guidance alone on the demo model)::

    python tools/benchmark.py configs/vpt_setr_ade20k.py \
        configs/davpt_setr_ade20k.py configs/davpt_plus_setr_ade20k.py \
        --img-size 128 --batch 2 --repeats 10 --json bench.json
    python tools/benchmark.py configs/demo/davpt_setr_vit-tiny_shapes-64x64.py \
        --guidance-off-twin --img-size 64 --batch 8 --repeats 50
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--img-size', type=int, default=128,
                        help='square input size (the real setting is 512)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides applied to every config')
    parser.add_argument(
        '--guidance-off-twin', action='store_true',
        help='also time every DA-VPT config with metric_guidance=None (same '
        'prompt layout): the cost of the guidance alone')
    parser.add_argument('--json', help='write results here')
    return parser.parse_args(argv)


def load_config(path, img_size, options):
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(path)
    model = cfg.model
    model.backbone.init_cfg = None  # random weights: timing only
    model.backbone.img_size = (img_size, img_size)
    model.data_preprocessor.size = (img_size, img_size)
    if model.test_cfg.get('mode') == 'slide':
        model.test_cfg.crop_size = (img_size, img_size)
        model.test_cfg.stride = (img_size * 2 // 3, img_size * 2 // 3)
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    return cfg


def synthetic_batch(batch, img_size, num_classes, device, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, img_size, img_size, generator=g)
    samples = []
    for _ in range(batch):
        # four quadrants of random classes: several classes per image
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


def build(cfg, device):
    from mmengine.optim import build_optim_wrapper
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).to(device)
    model.init_weights()
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmseg_davpt  # noqa: F401
    from mmseg.utils import register_all_modules
    register_all_modules()

    variants = []
    for path in args.configs:
        cfg = load_config(path, args.img_size, args.cfg_options)
        if args.guidance_off_twin and cfg.model.get('metric_guidance'):
            twin = copy.deepcopy(cfg)
            twin.model.metric_guidance = None
            variants.append((f'{path} (guidance off)', twin))
        variants.append((path, cfg))

    runs = []
    for path, cfg in variants:
        model, optim = build(cfg, args.device)
        inputs, samples = synthetic_batch(args.batch, args.img_size,
                                          model.decode_head.num_classes,
                                          args.device)
        if getattr(model, 'metric_guidance', None) is not None:
            model.collect_class_features(inputs, samples)
            model.refresh_class_mapping()
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        runs.append(dict(config=path, model=model, optim=optim,
                         guided=getattr(model, 'metric_guidance', None)
                         is not None,
                         inputs=inputs, samples=samples, times=[],
                         trainable=trainable))

    def step(run):
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = run['model'].loss(run['inputs'], run['samples'])
        loss, _ = run['model'].parse_losses(losses)
        run['optim'].update_params(loss)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for i in range(args.warmup + args.repeats):
        for run in runs:  # round-robin: load drift hits every model alike
            t = step(run)
            if i >= args.warmup:
                run['times'].append(t)

    base = statistics.median(runs[0]['times'])
    results = []
    print(f'\ntraining step, {args.img_size}x{args.img_size}, batch '
          f'{args.batch}, {args.device}, {torch.get_num_threads()} threads, '
          f'median of {args.repeats}')
    print(f'{"config":64s} {"trainable":>11s} {"median s":>9s} '
          f'{"ratio":>6s}')
    for run in runs:
        med = statistics.median(run['times'])
        results.append(dict(config=run['config'], trainable=run['trainable'],
                            guided=run['guided'], median_s=med,
                            ratio=med / base,
                            times_s=run['times']))
        print(f'{run["config"]:64s} {run["trainable"] / 1e6:10.3f}M '
              f'{med:9.3f} {med / base:6.3f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(img_size=args.img_size, batch=args.batch,
                           device=args.device,
                           threads=torch.get_num_threads(),
                           results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
