"""What many test files need: the repository root, the demo configs, the
data overrides for them, free ports and running a tool as a user does."""
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
