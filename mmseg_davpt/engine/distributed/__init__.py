from .cpu_ddp import (CPUDistributedDataParallel, init_cpu_distributed,
                      shutdown_distributed)

__all__ = [
    'CPUDistributedDataParallel', 'init_cpu_distributed',
    'shutdown_distributed'
]
