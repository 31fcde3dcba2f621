#!/usr/bin/env python
"""Segment one image and save the prediction painted over it.

    python tools/segment_image.py CONFIG CHECKPOINT IMAGE --out OUT.png
        [--opacity 0.5] [--no-labels] [--device cpu]
        [--backend pytorch|onnxruntime] [--cfg-options ...]

CHECKPOINT may be a full checkpoint or a PEFT file (the config's backbone
``init_cfg`` must then point at its base ViT), or with ``--backend
onnxruntime`` an ONNX file from ``tools/export_onnx.py``. Inference follows
the config's ``test_cfg`` (whole or slide) and ``test_pipeline``, through
``mmseg.apis.inference_model`` (PyTorch) or ``OnnxSegmentor`` (the same
steps around the ONNX graph); drawing through ``show_result_pyplot``.
"""
import argparse
import os
import os.path as osp


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Segment an image')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='full or PEFT checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True,
                        help='painted prediction (PNG) to write')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='opacity of the painted classes, in (0, 1]')
    parser.add_argument('--force', action='store_true',
                        help='replace --out if it exists')
    parser.add_argument('--no-labels', action='store_true',
                        help='do not write class names on the image')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        default='pytorch',
                        help='onnxruntime: CHECKPOINT is an ONNX file from '
                        'tools/export_onnx.py (same pre- and '
                        'post-processing)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    args = parser.parse_args(argv)
    if not 0 < args.opacity <= 1:
        parser.error(f'--opacity must be in (0, 1], got {args.opacity}')
    return args


def drawable(result):
    """``result`` with its prediction as a NumPy array, for mmseg's
    visualizer: it indexes a NumPy mask with ``pred == label``, and a torch
    bool tensor of one element then acts as the integer 1 (``IndexError`` on
    a 1x1 image, labels or not)."""
    from mmengine.structures import PixelData
    out = result.clone()
    out.pred_sem_seg = PixelData(data=result.pred_sem_seg.data.cpu().numpy())
    return out


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    from mmseg.apis import inference_model, show_result_pyplot

    from mmseg_davpt.apis import init_davpt_model, read_image
    from mmseg_davpt.utils.output_guard import (IMAGE_EXTENSIONS,
                                                check_output_file)
    # before the (possibly long) inference, not after it
    check_output_file(args.out, [args.image, args.checkpoint, args.config],
                      args.force, '--out', extensions=IMAGE_EXTENSIONS)
    img = read_image(args.image)  # clear error before building the model
    if args.backend == 'onnxruntime':
        from mmseg_davpt.deploy import OnnxSegmentor
        model = OnnxSegmentor(args.config, args.checkpoint, args.cfg_options)
        result = model.segment(img)
    else:
        model = init_davpt_model(args.config, args.checkpoint, args.device,
                                 args.cfg_options)
        result = inference_model(model, img)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    show_result_pyplot(model, img[..., ::-1].copy(), drawable(result),
                       opacity=args.opacity, draw_gt=False, show=False,
                       with_labels=not args.no_labels, out_file=args.out)
    labels = result.pred_sem_seg.data[0].cpu().numpy()
    classes = model.dataset_meta['classes']
    ids, counts = np.unique(labels, return_counts=True)
    found = ', '.join(f'{classes[i]} {c / labels.size:.1%}'
                      for i, c in sorted(zip(ids, counts),
                                         key=lambda ic: -ic[1]))
    print(f'{args.image}: {labels.shape[1]}x{labels.shape[0]} px; {found}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
