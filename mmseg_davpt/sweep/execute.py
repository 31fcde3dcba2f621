"""Train and score one run in this process through mmengine's Runner,
leaving no global state behind for the next run."""
import contextlib
import gc
import os
import os.path as osp
import sys
import time
from typing import Callable, Dict, Iterator, Optional

# The phase's scoring split -> the Runner method that scores it.
SCORERS = dict(val='val', test='test')


def _manager_classes():
    """Every mmengine ``ManagerMixin`` class (loggers, message hubs,
    visualizers, default scopes, ...) with its own instance table."""
    from mmengine.utils import ManagerMixin
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@contextlib.contextmanager
def console_to(log_file: str) -> Iterator[None]:
    """Send everything written to stdout / stderr to ``log_file``: Python's
    ``sys.stdout`` / ``sys.stderr`` and the process's file descriptors 1
    and 2 (mmengine's progress bars hold the original ``sys.stdout``)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_file, 'a') as out:
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            with contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(out):
                yield
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextlib.contextmanager
def isolated_run(log_file: str) -> Iterator[None]:
    """Run a Runner without leaking into the next one: the global instance
    tables of mmengine (logger, message hub, visualizer, default scope) are
    restored afterwards, loggers created inside have their handlers closed,
    and the run's console output goes to ``log_file``."""
    from mmengine.logging import MMLogger
    saved = {cls: cls._instance_dict.copy() for cls in _manager_classes()
             if '_instance_dict' in vars(cls)}
    try:
        with console_to(log_file):
            yield
    finally:
        for logger in MMLogger._instance_dict.values():
            if logger not in saved.get(MMLogger, {}).values():
                for handler in list(logger.handlers):
                    handler.close()
                    logger.removeHandler(handler)
        for cls in _manager_classes():
            if '_instance_dict' in vars(cls):
                cls._instance_dict.clear()
                cls._instance_dict.update(saved.get(cls, {}))


_FROZEN = []


def _freeze_long_lived_objects() -> None:
    """Once per process, move the objects alive now (the imported libraries)
    out of the garbage collector's sight: mmengine's datasets call
    ``gc.collect()`` when built, which otherwise walks every object of the
    process (~0.6 s a dataset here)."""
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN.append(True)


# mmengine's own default hooks: set to None, they are switched off; any other
# name set to None fails mmengine's check, so it is removed here instead.
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                          'param_scheduler', 'checkpoint')


def _drop_hook(name: str, hook) -> bool:
    if hook is None:
        return name not in MMENGINE_DEFAULT_HOOKS
    return isinstance(hook, dict) and hook.get('type') == 'ClsReportHook'


def prepare_config(cfg, run_dir: str):
    """Settings every sweep run gets: its folder as work dir, a unique
    experiment name (mmengine names loggers and message hubs by it; a
    timestamp alone repeats within a second), no validation during
    training (the sweep scores the finished run once), no
    ``ClsReportHook`` (it would also score the test split at every
    validation; default hooks set to None are switched off), and the
    config text the runner logs and dumps left
    unformatted (yapf takes ~0.5 s each of the six times a run prints it).
    """
    object.__setattr__(cfg, '_format_python_code', False)
    cfg.work_dir = run_dir
    cfg.experiment_name = f'sweep_{time.time_ns()}'
    cfg.pop('sweep', None)
    cfg.train_cfg.val_begin = 2**62
    hooks = cfg.get('default_hooks') or {}
    for name in [n for n, h in hooks.items() if _drop_hook(n, h)]:
        hooks.pop(name)
    if cfg.get('custom_hooks'):
        cfg.custom_hooks = [h for h in cfg.custom_hooks
                            if h.get('type') != 'ClsReportHook']
    return cfg


def execute_run(cfg, split: str,
                before_train: Optional[Callable] = None) -> Dict[str, float]:
    """Train ``cfg`` (prepared by ``prepare_config``) and score the trained
    model once on ``split`` (``'val'``: the config's val_dataloader /
    val_evaluator; ``'test'``: its test ones).

    Args:
        cfg (Config): the run's resolved config.
        split (str): ``'val'`` or ``'test'``.
        before_train (callable, optional): called with the built runner
            before training (e.g. a check of the training split).

    Returns:
        dict: the evaluator's metrics.
    """
    if split not in SCORERS:
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    import mmseg_davpt  # noqa: F401  (registers the modules)
    from mmengine.runner import Runner
    _freeze_long_lived_objects()
    with isolated_run(osp.join(cfg.work_dir, 'console.log')):
        runner = Runner.from_cfg(cfg)
        if before_train is not None:
            before_train(runner)
        runner.train()
        metrics = getattr(runner, SCORERS[split])()
        del runner
    return {k: float(v) for k, v in metrics.items() if _is_scalar(v)}


def _is_scalar(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False  # e.g. per-class arrays
    return True
