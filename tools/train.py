#!/usr/bin/env python
"""Train a segmentor or classifier from a config, as MMSegmentation's and
mmpretrain's ``tools/train.py`` do (classification configs: ``configs/cls``).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import os.path as osp


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Train a segmentor or classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CKPT',
        help='resume from CKPT, or without a value from the latest '
        'checkpoint in the work dir (weights, optimizer, scheduler, '
        'iteration and the DA-VPT class -> prompt mapping)')
    parser.add_argument(
        '--overwrite-work-dir', action='store_true',
        help='start a new run in a work dir that holds another run\'s '
        'checkpoints, deleting them first (without it such a run stops)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_cfg.max_iters=1000 '
        'model.backbone.num_prompts=10')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    # torch.distributed.launch passes --local-rank (older: --local_rank)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    from mmseg_davpt.utils.config import load_run_config
    cfg = load_run_config(args.config, args.launcher, args.cfg_options,
                          args.work_dir)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--amp: mmengine\'s AmpOptimWrapper needs a CUDA '
                             '(or NPU/MLU) device; on CPU train without --amp')
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print('--amp: the config already uses AmpOptimWrapper')
        elif wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, '
                             f'the config has {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: no checkpoint {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_train_split(runner) -> None:
    """Fail fast, naming the paths, on an empty training, validation or
    test split (a run validates and may score the test split)."""
    from mmseg_davpt.datasets import check_balanced_loader
    from mmseg_davpt.utils.empty_split import check_splits
    check_splits(runner, 'train')
    # a ClassBalancedSampler's blocks must be whole batches
    check_balanced_loader(runner.train_dataloader)
    check_splits(runner, 'val')


def check_resume(runner) -> None:
    """With ``--resume``, check the checkpoint against the built model
    before mmengine resumes from it (its own failures do not name the
    cause: see ``mmseg_davpt.apis.check_resume_checkpoint``)."""
    from mmengine.runner import find_latest_checkpoint

    from mmseg_davpt.apis import check_resume_checkpoint
    cfg = runner.cfg
    if not cfg.get('resume'):
        return
    path = cfg.get('load_from') or find_latest_checkpoint(runner.work_dir)
    if path is not None:  # none yet: mmengine starts from scratch
        check_resume_checkpoint(runner.model, path)


def main(argv=None):
    args = parse_args(argv)
    import mmseg_davpt  # noqa: F401  (registers modules before building)
    from mmengine.runner import Runner

    from mmseg_davpt.engine import init_cpu_distributed, shutdown_distributed
    from mmseg_davpt.engine.work_dir_lock import lock_work_dir
    from mmseg_davpt.engine.work_dir_reuse import check_new_run_work_dir
    cfg = build_config(args)
    lock = lock_work_dir(cfg.work_dir)  # one live run per dir, until exit
    # after the lock: no live run can be writing there now
    check_new_run_work_dir(cfg.work_dir, bool(cfg.get('resume')),
                           args.overwrite_work_dir, remove=lock is not None)
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    check_resume(runner)
    check_train_split(runner)
    runner.train()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()


if __name__ == '__main__':
    main()
