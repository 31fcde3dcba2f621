#!/usr/bin/env python
"""Write the PEFT part of a trained checkpoint (prompts, tuned biases, heads,
mapping buffers) with a fingerprint of the base ViT it was trained on.

    python tools/export_peft.py CONFIG CHECKPOINT OUT [--cfg-options ...]

The config's backbone ``init_cfg`` must point at the base ViT used in
training: the fingerprint is taken from the weights it loads, and the
export stops if the full checkpoint's frozen weights differ from them.
"""
import argparse
import os.path as osp


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export a PEFT checkpoint from a full checkpoint')
    parser.add_argument('config', help='config the checkpoint was trained '
                        'with')
    parser.add_argument('checkpoint', help='full checkpoint (tools/train.py)')
    parser.add_argument('out', help='PEFT checkpoint to write (never the '
                        'checkpoint, the config or the base ViT)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args(argv)


def _mb(num_bytes: int) -> str:
    return f'{num_bytes / 1e6:.2f} MB'


def main(argv=None):
    args = parse_args(argv)
    import mmseg_davpt  # noqa: F401  (registers modules before building)
    from mmseg_davpt.apis import load_model_checkpoint
    from mmseg_davpt.peft import base_fingerprint, is_peft_checkpoint, \
        save_peft
    from mmseg_davpt.utils.checkpoint_file import read_checkpoint
    from mmseg_davpt.utils.config import load_config
    from mmseg_davpt.utils.model import build_model
    from mmseg_davpt.utils.output_guard import check_output_file
    cfg = load_config(args.config, args.cfg_options)
    init_cfg = cfg.model.backbone.get('init_cfg') or {}
    check_output_file(args.out, [args.checkpoint, args.config,
                                 init_cfg.get('checkpoint')],
                      args.force, 'OUT')
    full = read_checkpoint(args.checkpoint)
    if is_peft_checkpoint(full):
        raise ValueError(f'{args.checkpoint} is already a PEFT checkpoint')
    base = init_cfg.get('checkpoint')
    if init_cfg.get('type') != 'Pretrained' or not base:
        raise ValueError(
            "the backbone's init_cfg must load the base ViT "
            "(type='Pretrained', checkpoint=PATH) so its fingerprint can be "
            f'recorded; got {init_cfg or None}')
    model = build_model(cfg)
    model.init_weights()  # the base ViT, as at the start of training
    base_print = base_fingerprint(model)
    load_model_checkpoint(model, full, source=args.checkpoint)
    # Training never changes frozen weights; if they differ, the checkpoint
    # was trained on another base and the PEFT file would be useless.
    if base_fingerprint(model) != base_print:
        raise ValueError(
            f'the frozen weights in {args.checkpoint} differ from the base '
            f'ViT {base} (backbone init_cfg); point init_cfg.checkpoint at '
            'the weights it was trained from')
    meta = {k: v for k, v in (full.get('meta') or {}).items()
            if k != 'rng_states'}  # resume-only state, per rank
    save_peft(model, args.out, base_checkpoint=base, meta=meta)
    full_size, peft_size = (osp.getsize(args.checkpoint),
                            osp.getsize(args.out))
    print(f'base ViT: {base} (fingerprint {base_print[:16]}...)')
    print(f'full checkpoint: {args.checkpoint}: {full_size} bytes '
          f'({_mb(full_size)})')
    print(f'PEFT checkpoint: {args.out}: {peft_size} bytes '
          f'({_mb(peft_size)}), {peft_size / full_size:.2%} of the full '
          f'file ({full_size / peft_size:.1f}x smaller)')


if __name__ == '__main__':
    main()
