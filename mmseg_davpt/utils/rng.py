"""Running a block without consuming the process's random streams."""
import random
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def untouched_rng():
    """Run a block and leave Python's, NumPy's global, torch's CPU and CUDA
    generators as they were before it, so that work done on the side (an
    extra data pass, an evaluation) does not change what the training draws
    afterwards (augmentation, dropout, sampling)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) \
        if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
