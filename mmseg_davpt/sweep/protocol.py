"""The per-task protocol: a grid on train/val, the choice on val (pooled
over seeds), a final training per seed with the chosen values, one test per
seed, and a summary.

Selection is made once per method on the val scores pooled over seeds (the
mean over seeds of each grid point), not per seed: every final run then
uses the same settings, so the per-seed test scores differ only by seed and
may be averaged. Ties go to the earliest grid point in grid order.
"""
import json
import os.path as osp
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .grid import expand_grid, point_name, seed_overrides
from .stats import mean_std
from .store import RunStore, _json_safe, flatten
from .summary import (check_same_settings, format_summary, method_summary,
                      seed_scores, select_point)

Executor = Callable[[Any, str], Dict[str, float]]


@dataclass
class SweepSpec:
    """What one sweep runs.

    Args:
        config: config file path.
        work_dir: where the runs and the summary go.
        seeds: the seeds; each has its own grid and final runs.
        grid: ``{config key: [values]}``; one point (or none) skips the
            grid phase.
        seed_options: ``{config key: value}``, ``{seed}`` in strings
            replaced by the seed (``randomness.seed`` is always set).
        final_options: overrides of the final runs (e.g. train on
            train+val).
        metric: the metric selected on (higher is better) and reported.
        select_on_test: score grid runs on the test split instead of val
            (optimistic; the summary says so).
        cfg_options: overrides of every run.
        name: the method's name in summaries (default: config name).
    """
    config: str
    work_dir: str
    seeds: List[int]
    grid: Dict[str, list] = field(default_factory=dict)
    seed_options: Dict[str, Any] = field(default_factory=dict)
    final_options: Dict[str, Any] = field(default_factory=dict)
    metric: str = 'accuracy/top1'
    select_on_test: bool = False
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    name: Optional[str] = None

    def __post_init__(self):
        if not self.seeds:
            raise ValueError('a sweep needs at least one seed')
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f'repeated seeds: {self.seeds}')
        if self.name is None:
            self.name = osp.splitext(osp.basename(self.config))[0]
        self.points = expand_grid(self.grid)

    @property
    def num_runs(self) -> int:
        """Grid runs (none for a single point) plus one final run per
        seed."""
        grid = len(self.points) if len(self.points) > 1 else 0
        return (grid + 1) * len(self.seeds)


def spec_from_config(config: str, work_dir: str,
                     seeds: Optional[List[int]] = None,
                     grid: Optional[Dict[str, list]] = None,
                     seed_options: Optional[Dict[str, Any]] = None,
                     final_options: Optional[Dict[str, Any]] = None,
                     metric: Optional[str] = None, **kwargs) -> SweepSpec:
    """A ``SweepSpec`` whose defaults come from the config's top-level
    ``sweep = dict(metric=..., grid=..., seed_options=..., final_options=...,
    seeds=...)``. ``grid`` given here replaces the config's grid;
    ``seed_options`` / ``final_options`` update the config's per key."""
    from mmseg_davpt.utils.config import load_config
    defaults = load_config(config).get('sweep') or {}
    unknown = set(defaults) - {'metric', 'grid', 'seed_options',
                               'final_options', 'seeds'}
    if unknown:
        raise KeyError(f'{config}: unknown keys in sweep: {sorted(unknown)}')

    def merged(key, given):
        return {**dict(defaults.get(key) or {}), **(given or {})}

    return SweepSpec(
        config=config, work_dir=work_dir,
        seeds=list(seeds if seeds is not None
                   else defaults.get('seeds', [0, 1, 2])),
        grid=dict(grid if grid is not None else defaults.get('grid') or {}),
        seed_options=merged('seed_options', seed_options),
        final_options=merged('final_options', final_options),
        metric=metric or defaults.get('metric', 'accuracy/top1'), **kwargs)


class Progress:
    """One line per run: ``[done/total] name ... val=.. (ETA mm:ss)``; the
    ETA is the mean time of the runs executed so far times the runs left,
    divided by the number of runs going on at once (``jobs``).
    """

    def __init__(self, total: int, stream=None, jobs: int = 1):
        self.total, self.done, self.jobs = total, 0, jobs
        self.seconds, self.executed = 0.0, 0
        self.stream = stream or sys.stdout

    def step(self, name: str, split: str, score: float, seconds: float,
             cached: bool) -> None:
        self.done += 1
        if cached:
            when = 'finished before'
        else:
            self.seconds += seconds
            self.executed += 1
            left = (self.total - self.done) * self.seconds / \
                self.executed / self.jobs
            when = f'{seconds:.1f} s, ETA {int(left // 60):02d}:' \
                f'{int(left % 60):02d}'
        print(f'[{self.done}/{self.total}] {name} ... {split}={score:.4f} '
              f'({when})', file=self.stream, flush=True)


def default_executor(before_train: Optional[Callable] = None) -> Executor:
    """Runs a config in this process (``execute.execute_run``)."""
    from .execute import execute_run

    def run(cfg, split):
        return execute_run(cfg, split, before_train=before_train)
    return run


class Sweep:
    """Runs a ``SweepSpec``'s protocol, resuming from its work dir.

    Args:
        spec (SweepSpec): what to run.
        execute (callable): ``execute(cfg, split) -> metrics``; trains the
            prepared config and scores it on ``'val'`` or ``'test'``.
            Default: in this process through mmengine's Runner.
        progress (Progress, optional): shared progress printer (default: one
            for this sweep alone).
    """

    def __init__(self, spec: SweepSpec, execute: Optional[Executor] = None,
                 progress: Optional[Progress] = None):
        self.spec = spec
        self.execute = execute or default_executor()
        self.progress = progress or Progress(spec.num_runs)
        self.store = RunStore(spec.work_dir)
        self._base = None

    def _config(self, options: Dict[str, Any], run_dir: str):
        from mmseg_davpt.utils.config import load_config

        from .execute import prepare_config
        if self._base is None:
            self._base = load_config(self.spec.config)
        cfg = load_config(self._base, options)
        cfg.launcher = 'none'
        return prepare_config(cfg, run_dir)

    def run_one(self, phase: str, point: Dict[str, Any], seed: int,
                split: str) -> dict:
        """One run (or its stored result): ``phase`` ``'grid'`` / ``'final'``,
        the grid ``point``, the ``seed``, the scoring ``split``."""
        spec = self.spec
        options = {**spec.cfg_options, **point,
                   **seed_overrides(spec.seed_options, seed)}
        if phase == 'final':
            options.update(spec.final_options)
        name = f'{phase}/{point_name(point)}/seed_{seed}'
        settings = dict(config=osp.basename(spec.config), phase=phase,
                        point=point, seed=seed, split=split, options=options)
        record = self.store.finished(name, settings)
        cached = record is not None
        if record is None:
            run_dir = self.store.start(name, settings)
            cfg = self._config(options, run_dir)
            resolved = flatten(_json_safe(cfg.to_dict()))
            start, cpu = time.time(), time.process_time()
            metrics = self.execute(cfg, split)
            record = self.store.finish(name, settings, dict(
                name=name, phase=phase, seed=seed, split=split,
                point=point, metrics=metrics, seconds=time.time() - start,
                cpu_seconds=time.process_time() - cpu, resolved=resolved))
        score = seed_scores([record], spec.metric)[seed]
        self.progress.step(f'{spec.name}/{name}', split, score,
                           record['seconds'], cached)
        return record

    def grid_phase(self) -> List[dict]:
        """Grid runs, each point on every seed; per point its records and
        the mean / std over seeds of the selection metric."""
        spec = self.spec
        split = 'test' if spec.select_on_test else 'val'
        entries = []
        for point in spec.points:
            records = [self.run_one('grid', point, seed, split)
                       for seed in spec.seeds]
            check_same_settings(records, spec.seed_options)
            scores = seed_scores(records, spec.metric)
            entries.append(dict(point=point, split=split,
                                scores={str(s): v for s, v in scores.items()},
                                **mean_std(list(scores.values())),
                                runs=[r['name'] for r in records]))
        return entries

    def run(self) -> dict:
        """The whole protocol; writes and returns the summary
        (``work_dir/summary.json``, ``summary.txt``)."""
        from mmseg_davpt.engine.work_dir_lock import (WorkDirBusyError,
                                                      WorkDirLock)
        spec = self.spec
        try:
            lock = WorkDirLock(spec.work_dir).acquire()
        except WorkDirBusyError as err:
            raise SystemExit(f'Error: {err}') from None
        try:
            if len(spec.points) > 1:
                grid = self.grid_phase()
                chosen = grid[select_point(grid)]['point']
            else:
                grid, chosen = [], spec.points[0]
            finals = [self.run_one('final', chosen, seed, 'test')
                      for seed in spec.seeds]
            summary = method_summary(
                spec.name, spec.metric,
                'test' if spec.select_on_test else 'val', grid, chosen,
                finals, spec.seed_options)
            summary.update(config=spec.config, seeds=spec.seeds,
                           final_options=spec.final_options,
                           runs=[r['name'] for r in finals])
            self._write(summary)
            return summary
        finally:
            lock.release()

    def _write(self, summary: dict) -> None:
        with open(osp.join(self.spec.work_dir, 'summary.json'), 'w') as f:
            json.dump(_json_safe(summary), f, indent=1)
        with open(osp.join(self.spec.work_dir, 'summary.txt'), 'w') as f:
            f.write('\n'.join(format_summary(summary)) + '\n')


def run_sweep(spec: SweepSpec, **kwargs) -> dict:
    """``Sweep(spec, **kwargs).run()``."""
    return Sweep(spec, **kwargs).run()
