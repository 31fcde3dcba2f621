#!/usr/bin/env python
"""Export a trained segmentor or classifier to ONNX and check it against
PyTorch with ONNX Runtime.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W]
        [--dynamic] [--atol 1e-3] [--max-changed 0] [--cfg-options ...]

CHECKPOINT may be a full checkpoint or a PEFT file (the config's backbone
``init_cfg`` must then point at its base ViT). The graph takes ``(N, 3, H,
W)`` float BGR pixels as the test pipeline leaves them (resized, 0-255) and
returns logits: ``(N, C, H, W)`` for a segmentor (normalisation, backbone,
decode head, resize to the input; in slide mode one window, the sliding
stays outside: ``tools/segment_image.py --backend onnxruntime``), ``(N, C)``
for a classifier. ``H, W`` default to the slide window, else the data
preprocessor's ``size``, else the backbone's ``img_size``; ``--dynamic``
leaves the batch size free. After export, PyTorch and ONNX Runtime run on a
seeded sample batch; the tool prints the largest logit difference and the
share of pixels (images) whose predicted class differs, and exits with 1
when either is above its tolerance. Needs ``pip install -e '.[deploy]'``.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export to ONNX and check parity with PyTorch')
    parser.add_argument('config', help='config the checkpoint was trained '
                        'with')
    parser.add_argument('checkpoint', help='full or PEFT checkpoint')
    parser.add_argument('out', help='ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: see above)')
    parser.add_argument('--dynamic', action='store_true',
                        help='free batch size')
    parser.add_argument('--opset', type=int, default=None,
                        help="ONNX opset (default: the exporter's)")
    parser.add_argument('--atol', type=float, default=1e-3,
                        help='largest accepted |logit difference|')
    parser.add_argument('--max-changed', type=float, default=0.0,
                        help='largest accepted share of changed labels')
    parser.add_argument('--check-batch', type=int, default=2,
                        help='sample batch size of the parity check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.shape and min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}')
    if not args.out.endswith('.onnx'):
        parser.error(f'OUT must end in .onnx, got {args.out}')
    inputs = {osp.realpath(p) for p in (args.config, args.checkpoint)}
    if osp.realpath(args.out) in inputs:
        parser.error(f'OUT {args.out} is one of the inputs')
    if args.check_batch < 1:
        parser.error('--check-batch must be >= 1')
    if not args.dynamic:
        args.check_batch = 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_davpt.apis import init_davpt_model
    from mmseg_davpt.deploy import check_parity, export_onnx, require_onnx
    require_onnx()  # before building anything
    model = init_davpt_model(args.config, args.checkpoint, 'cpu',
                             args.cfg_options)
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        raise FileNotFoundError(f'no directory {out_dir} for {args.out}')
    shape = export_onnx(model, args.out, args.shape, args.dynamic,
                        args.opset)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 1e6:.2f} MB; input '
          f'pixels ({"N" if args.dynamic else 1}, 3, {shape[0]}, '
          f'{shape[1]}))')
    parity = check_parity(model, args.out, shape, batch=args.check_batch,
                          atol=args.atol,
                          max_changed_share=args.max_changed)
    print(parity)
    return 0 if parity.ok else 1


if __name__ == '__main__':
    sys.exit(main())
