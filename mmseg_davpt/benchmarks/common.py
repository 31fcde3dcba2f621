"""Shared helpers: benchmark models, round-robin timing, saved-tensor
memory, reports."""
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import time
import weakref
from typing import Callable, Dict, Iterable, List, Optional

import torch

DEFAULT_CONFIGS = [
    f'configs/{n}_setr_ade20k.py' for n in ('vpt', 'davpt', 'davpt_plus',
                                            'full')
]


# ------------------------------------------------------------------ models
def benchmark_config(path: str, img_size: int,
                     cfg_options: Optional[dict] = None):
    """The config at ``path`` with random init (nothing is downloaded) and
    ``img_size`` crops for training and slide inference; ``cfg_options``
    (``--cfg-options``) are applied last."""
    from ..utils.config import load_config
    cfg = load_config(path)
    model = cfg.model
    model.backbone.init_cfg = None  # random weights: timing only
    model.backbone.img_size = (img_size, img_size)
    model.data_preprocessor.size = (img_size, img_size)
    if model.test_cfg.get('mode') == 'slide':
        model.test_cfg.crop_size = (img_size, img_size)
        model.test_cfg.stride = (img_size * 2 // 3, img_size * 2 // 3)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build(cfg, device: str):
    """``(model, optim_wrapper)`` of ``cfg`` in train mode on ``device``."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper

    from ..utils.model import build_model
    model = revert_sync_batchnorm(build_model(cfg)).to(device)
    model.init_weights()
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def autocast(device: str, enabled: bool):
    """bf16 autocast on CPU, fp16 on CUDA; a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    kind = 'cuda' if str(device).startswith('cuda') else 'cpu'
    dtype = torch.float16 if kind == 'cuda' else torch.bfloat16
    return torch.autocast(kind, dtype=dtype)


# ------------------------------------------------------------------ timing
def synchronize(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def round_robin(cases: Dict[str, Callable[[], None]], warmup: int,
                repeats: int, device: str = 'cpu') -> Dict[str, List[float]]:
    """Time every callable ``warmup + repeats`` times, interleaved.

    One call of each case per round, so a change in machine load (the CPU is
    shared) hits every case alike; every other round runs the cases in
    reverse order, so no case always follows the same neighbour. Put cases
    that are compared with each other next to each other. Returns the
    ``repeats`` wall times in seconds per case (warm-up calls dropped), in
    round order.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f'need warmup >= 0 and repeats >= 1, got '
                         f'warmup={warmup}, repeats={repeats}')
    times = {name: [] for name in cases}
    order = list(cases.items())
    for i in range(warmup + repeats):
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def paired_ratio(times: List[float], base: List[float]) -> float:
    """Median over rounds of ``times[i] / base[i]``: each ratio compares two
    runs made seconds apart, so slow load drift cancels (more robust than
    the ratio of medians on a shared machine)."""
    if len(times) != len(base):
        raise ValueError('paired_ratio needs one time per round for both')
    return median(t / b for t, b in zip(times, base))


# ------------------------------------------------------------------ memory
class SavedTensorBytes:
    """Bytes that autograd keeps for the backward pass (activation memory).

    Inside the context every tensor that an autograd node saves is recorded
    through ``torch.autograd.graph.saved_tensors_hooks`` (by weak
    reference). ``bytes`` sums the storages of the recorded tensors that
    are still alive, i.e. still held by a graph, each storage once (keyed by
    device and data pointer) and counting the whole storage (a saved view
    keeps its base alive). Parts of the graph freed early (outputs nobody
    uses) therefore drop out, and a freed address reused by a later tensor
    is not counted twice. Storages listed in ``exclude`` (e.g. parameters,
    counted separately) are skipped.

    Caveat: code that installs its own saved-tensor hooks inside the context
    (non-reentrant ``torch.utils.checkpoint``) hides the tensors it saves;
    ``add`` counts what such code keeps (the checkpointed inputs; held by
    strong reference).

    Example::

        with SavedTensorBytes() as mem:
            loss = model(x).sum()
        print(mem.bytes)  # while ``loss`` (the graph) is alive
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self._excluded = {self.key(t) for t in exclude}
        self._weak = []
        self._strong = []
        self._hooks = None

    @staticmethod
    def key(t: torch.Tensor):
        return (str(t.device), t.untyped_storage().data_ptr())

    def _countable(self, t) -> bool:
        return (isinstance(t, torch.Tensor) and t.layout == torch.strided
                and t.untyped_storage().data_ptr() != 0
                and self.key(t) not in self._excluded)

    def add(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage (kept alive by this object) unless
        excluded."""
        if self._countable(t):
            self._strong.append(t)

    def _pack(self, t):
        # A detached alias (same storage and version counter): handing back
        # ``t`` itself would, for a saved output, make a reference cycle
        # (node -> packed output -> its grad_fn node) that outlives the graph.
        t = t.detach()
        if self._countable(t):
            self._weak.append(weakref.ref(t))
        return t

    @staticmethod
    def _unpack(t):
        return t

    @property
    def bytes(self) -> int:
        alive = self._strong + [
            t for t in (r() for r in self._weak) if t is not None]
        return tensor_bytes(alive)

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        return False


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of distinct storages among ``tensors``."""
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            seen[SavedTensorBytes.key(t)] = t.untyped_storage().nbytes()
    return sum(seen.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer):
    for state in optimizer.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                yield v


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) of this process, so a
    later ``peak_rss_bytes`` covers what follows (Linux; False if refused)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_since_reset() -> int:
    """``VmHWM`` (bytes): peak RSS since start or the last reset."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return peak_rss_bytes()


def current_rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


# ------------------------------------------------------------------ reports
def machine_info(device: str) -> dict:
    """Machine facts for the report (CPU model from ``lscpu``)."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                cpu = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info = dict(cpu=cpu, cpu_count=os.cpu_count(), torch=torch.__version__,
                threads=torch.get_num_threads(), device=str(device),
                cuda=torch.cuda.is_available())
    if str(device).startswith('cuda'):
        info['gpu'] = torch.cuda.get_device_name()
    return info


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def markdown_table(columns: List[str], rows: List[List]) -> str:
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(fmt(v) for v in row) + ' |')
    return '\n'.join(lines)


def text_table(columns: List[str], rows: List[List]) -> str:
    cells = [columns] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return '\n'.join('  '.join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)


class Report:
    """Collects titled tables, prints them, and writes JSON / Markdown.

    ``add_table`` keeps both the rows (for Markdown) and the raw records
    (``records``: list of dicts, for JSON).
    """

    def __init__(self, command: str, args: dict, device: str):
        self.data = dict(command=command, args=args,
                         machine=machine_info(device), tables=[], notes=[])
        self.markdown = [f'### `{command}`']

    def note(self, text: str) -> None:
        print(text)
        self.data['notes'].append(text)
        self.markdown.append('')
        self.markdown.append(text)

    def add_table(self, title: str, columns: List[str], rows: List[List],
                  records: Optional[List[dict]] = None) -> None:
        print(f'\n{title}\n{text_table(columns, rows)}')
        self.data['tables'].append(
            dict(title=title, columns=columns, rows=rows,
                 records=records if records is not None else []))
        self.markdown += ['', f'**{title}**', '',
                          markdown_table(columns, rows)]

    def write(self, json_path: Optional[str] = None,
              markdown_path: Optional[str] = None) -> None:
        if json_path:
            with open(json_path, 'w') as f:
                json.dump(self.data, f, indent=2, default=str)
        if markdown_path:
            m = self.data['machine']
            header = (f'{m["cpu"]}, {m["cpu_count"]} CPUs, torch '
                      f'{m["torch"]}, {m["threads"]} threads, device '
                      f'{m["device"]}')
            with open(markdown_path, 'w') as f:
                f.write('\n'.join([self.markdown[0], '', header] +
                                  self.markdown[1:]) + '\n')
