"""Several sweeps at once, each in a worker process with one torch thread:
on a small CPU machine two single-threaded trainings of tiny models finish
in about the time of one two-threaded training."""
import multiprocessing
import queue as queue_lib
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, List, Optional, Sequence

from .protocol import Progress, Sweep, SweepSpec, default_executor

_EVENTS = None  # the worker's queue of progress events to the parent


def _init_worker(events) -> None:
    global _EVENTS
    _EVENTS = events
    import torch
    torch.set_num_threads(1)


class _ForwardProgress:
    """A worker's progress: each step is sent to the parent, which prints
    one line per run for all workers."""

    def step(self, *args) -> None:
        _EVENTS.put(args)


def _run_in_worker(spec: SweepSpec, before_train: Optional[Callable]):
    return Sweep(spec, execute=default_executor(before_train),
                 progress=_ForwardProgress()).run()


def _forward(events, progress: Progress, timeout: float) -> None:
    while True:
        try:
            progress.step(*events.get(timeout=timeout))
        except queue_lib.Empty:
            return
        timeout = 0


def run_sweeps(specs: Sequence[SweepSpec], jobs: int = 1,
               before_train: Optional[Callable] = None,
               progress: Optional[Progress] = None) -> List[dict]:
    """Run every spec's protocol; returns their summaries, in order.

    Args:
        specs: the sweeps (each with its own work dir).
        jobs: worker processes (started with ``spawn``; each runs whole
            sweeps, in the order given: put the longest first); 1 runs
            everything in this process.
        before_train: passed to every run (see ``default_executor``); with
            ``jobs > 1`` it must be importable by name (picklable).
        progress: shared progress printer (default: one for all specs).
    """
    progress = progress or Progress(sum(s.num_runs for s in specs))
    if jobs <= 1:
        execute = default_executor(before_train)
        return [Sweep(spec, execute=execute, progress=progress).run()
                for spec in specs]
    progress.jobs = jobs
    ctx = multiprocessing.get_context('spawn')
    events = ctx.Queue()
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(events, )) as pool:
        futures = [pool.submit(_run_in_worker, spec, before_train)
                   for spec in specs]
        while not all(f.done() for f in futures):
            _forward(events, progress, timeout=0.5)
        _forward(events, progress, timeout=0.5)
        return [f.result() for f in futures]
