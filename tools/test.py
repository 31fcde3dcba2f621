#!/usr/bin/env python
"""Evaluate a checkpoint, as MMSegmentation's / mmpretrain's ``tools/test.py``
(segmentation and classification configs alike).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options key=value ...] [--launcher ...]

``--tta`` runs the config's ``tta_pipeline`` (multi-scale + flip: mIoU-MS;
segmentation configs).
CHECKPOINT is a full checkpoint (``tools/train.py``) or a PEFT file
(``tools/export_peft.py``); the latter is put on top of the base ViT that the
config's backbone ``init_cfg`` loads, after checking its fingerprint. Either
is loaded strictly (``mmseg_davpt.apis.load_model_checkpoint``): a checkpoint
that does not fit the config stops with the keys that differ.
"""
import argparse
import os
import os.path as osp


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='segmentation: save predicted label '
                        'maps (PNG) in this folder; classification: pickle '
                        'the predictions to this file')
    parser.add_argument('--force', action='store_true',
                        help='write --out even where it holds earlier '
                        'results')
    parser.add_argument('--show', action='store_true',
                        help='show predictions in a window')
    parser.add_argument('--show-dir', help='save painted predictions here '
                        '(relative to the work dir)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each image is shown with --show')
    parser.add_argument('--tta', action='store_true',
                        help='multi-scale + flip test-time augmentation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg, args):
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise KeyError('--show / --show-dir need default_hooks.visualization '
                       '(SegVisualizationHook, or mmpretrain\'s '
                       'VisualizationHook)')
    hook = hooks.visualization
    if cfg.get('default_scope') == 'mmpretrain':
        # mmpretrain's hook: switched by `enable`, writes to `out_dir`
        hook.enable = True
        if args.show_dir:
            hook.out_dir = osp.join(cfg.work_dir, args.show_dir)
    else:
        hook.draw = True
        if args.show_dir:
            cfg.visualizer.save_dir = osp.join(cfg.work_dir, args.show_dir)
    if args.show:
        hook.show = True
        hook.wait_time = args.wait_time
    return cfg


def add_result_output(cfg, out: str):
    """Keep the predictions under ``out``: MMSegmentation's IoUMetric writes
    the label maps there; for classification (mmpretrain) configs a
    ``DumpResults`` metric pickles every sample's scores and label."""
    if cfg.get('default_scope') == 'mmpretrain':
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults',
                                                out_file_path=out)]
    else:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def check_result_output(cfg, args) -> None:
    """``--out`` must not be an input, nor (without ``--force``) hold
    earlier results: a pickle file for classification, a folder with files
    for segmentation."""
    from mmseg_davpt.utils.output_guard import (OutputPathError,
                                                check_output_file)
    inputs = [args.checkpoint, args.config]
    if cfg.get('default_scope') == 'mmpretrain':
        check_output_file(args.out, inputs, args.force, '--out')
        return
    if osp.exists(args.out) and not osp.isdir(args.out):
        raise OutputPathError(f'--out {args.out!r} is a file; segmentation '
                              'writes its label maps into a folder')
    if osp.isdir(args.out) and os.listdir(args.out) and not args.force:
        raise OutputPathError(
            f'--out {args.out!r} already holds {len(os.listdir(args.out))} '
            'entries (earlier predictions?); pass --force to write into it, '
            'or choose an empty folder')


def build_config(args):
    from mmseg_davpt.utils.config import load_run_config
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'no checkpoint at {args.checkpoint}')
    cfg = load_run_config(args.config, args.launcher, args.cfg_options,
                          args.work_dir)
    from mmseg_davpt.peft import check_base_init_cfg, peft_record
    # main() loads the checkpoint, strictly; the runner's own loading
    # (load_from) is not strict and would leave missing or mismatched
    # weights at their random init without a word.
    cfg.load_from = None
    record = peft_record(args.checkpoint)
    if record is not None:
        # A PEFT file holds only the trained part: the base ViT comes from
        # init_cfg (checked now, before the runner is built).
        check_base_init_cfg(cfg.model.backbone.get('init_cfg'),
                            args.checkpoint, record)
    else:
        # The trained checkpoint holds every weight: don't read the
        # pretrained ViT file again (it may not exist where the model is
        # evaluated).
        cfg.model.backbone.init_cfg = None
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
            raise KeyError('--tta needs `tta_pipeline` and `tta_model` in '
                           'the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out:
        check_result_output(cfg, args)
        add_result_output(cfg, args.out)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import mmseg_davpt  # noqa: F401  (registers modules before building)
    from mmengine.runner import Runner

    from mmseg_davpt.apis import load_model_checkpoint
    from mmseg_davpt.engine import init_cpu_distributed, shutdown_distributed
    from mmseg_davpt.utils.checkpoint_file import read_checkpoint
    from mmseg_davpt.utils.empty_split import check_splits
    cfg = build_config(args)
    # read first: a file that is no checkpoint stops before the runner
    checkpoint = read_checkpoint(args.checkpoint)
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    load_model_checkpoint(runner.model, checkpoint, source=args.checkpoint)
    check_splits(runner, 'test')  # after the checkpoint: it is cheaper
    runner.test()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()


if __name__ == '__main__':
    main()
