"""What many test files need: the repository root, the demo configs, the
data overrides for them, free ports and running a tool as a user does."""
import glob
import os
import os.path as osp
import re
import socket
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DAVPT = osp.join(ROOT, 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py')
VPT = osp.join(ROOT, 'configs/demo/vpt_setr_vit-tiny_shapes-64x64.py')
CLS_DEMO = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')


def data_options(data_root, vit):
    """``--cfg-options`` pointing a segmentation demo config at the
    generated data and the converted demo ViT."""
    opts = [f'model.backbone.init_cfg.checkpoint={vit}']
    for split in ('train', 'val', 'test'):
        opts.append(f'{split}_dataloader.dataset.data_root={data_root}')
    return opts


def free_port() -> int:
    """A TCP port free on this machine now (for a process group)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tool_env(threads=1, **extra):
    """Environment for a tool subprocess: ``threads`` OpenMP threads, this
    interpreter's folder first on ``PATH`` (``torchrun`` of the launch
    scripts) and ``extra`` variables."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads),
                PATH=osp.dirname(sys.executable) + os.pathsep +
                os.environ.get('PATH', ''),
                **{k: str(v) for k, v in extra.items()})


def run_tool(*args, timeout=300, threads=2, check=True, **env):
    """Run ``python *args`` from the repository root as a user would;
    returns stdout + stderr (asserting exit status 0 with ``check``)."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT,
                          env=tool_env(threads, **env), capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, out[-4000:]
    return out


def last_miou(log):
    """The last ``mIoU`` an mmseg evaluation logged in ``log``."""
    found = re.findall(r'mIoU: ([0-9.]+)', log)
    assert found, log[-3000:]
    return float(found[-1])


def run_main(main, argv, work_dir):
    """Run a tool's ``main(argv)`` in this process (no interpreter start-up,
    no second import of torch and the registries) and return the text of
    the log files the run wrote under ``work_dir`` (mmengine writes
    ``work_dir/<timestamp>/<timestamp>.log``)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer
    # mmengine keeps visualizers by name for the process; a run must not
    # reuse the previous run's (it would write into that run's folder)
    stack = [Visualizer]
    while stack:
        cls = stack.pop()
        cls._instance_dict.clear()
        stack.extend(cls.__subclasses__())
    # the same for the runs' loggers: they are named by the runner's
    # timestamp (one-second resolution), so a run started within the same
    # second as an earlier one would get that run's logger and write into
    # the earlier run's log file instead of its own
    for name in [n for n in MMLogger._instance_dict if n != 'mmengine']:
        for handler in MMLogger._instance_dict.pop(name).handlers:
            handler.close()
    pattern = osp.join(str(work_dir), '*', '*.log')
    before = set(glob.glob(pattern))
    # the runner sets its config's default scope (mmseg or mmpretrain);
    # the tests after this run build from the scope they had before it
    scopes = DefaultScope._instance_dict.copy()
    try:
        main([str(a) for a in argv])
    finally:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(scopes)
    new = sorted(set(glob.glob(pattern)) - before)
    assert new, f'no log file written under {work_dir}'
    text = ''
    for path in new:
        with open(path) as f:
            text += f.read()
    return text


def run_ranks(worker, world_size=2, timeout=120):
    """Spawn ``world_size`` processes running ``worker(rank, world_size,
    port, queue)`` (a gloo process group on a free port); each puts
    ``(rank, *results)`` on the queue. Returns ``{rank: results}`` once all
    exited with status 0."""
    import torch.multiprocessing as mp
    port = free_port()
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    procs = [ctx.Process(target=worker, args=(r, world_size, port, queue))
             for r in range(world_size)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, *rest = queue.get(timeout=timeout)
        results[rank] = rest
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results
