"""Distributed training on CPU (gloo) with mmengine's runner.

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``, its DDP
wrapper passes ``device_ids=[LOCAL_RANK]`` and PyTorch's SyncBatchNorm needs
CUDA: all three fail without a GPU. The tools call ``init_cpu_distributed``
first, which starts a gloo process group (the runner then skips its own
initialisation), selects the wrapper below and turns SyncBN into per-rank BN.
"""
import gc
import os

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for modules on CPU (no ``device_ids``)."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def init_cpu_distributed(cfg) -> bool:
    """Set up gloo DDP when launched distributed on a machine without CUDA.

    Returns ``True`` when it did (and logs why), ``False`` otherwise.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print(f'No CUDA device: distributed backend {backend!r} replaced by '
              "'gloo' for this CPU run.")
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    num_bn = _sync_bn_to_bn(cfg.model)
    if num_bn and int(os.environ['RANK']) == 0:
        print(f'CPU distributed run: {num_bn} SyncBN config(s) use per-rank '
              'BN (SyncBatchNorm needs CUDA).')
    cfg.model_wrapper_cfg = dict(
        type='CPUDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True


def _sync_bn_to_bn(node) -> int:
    """Replace ``type='SyncBN'`` by ``'BN'`` in a nested config, in place;
    returns how many were replaced."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _sync_bn_to_bn(value)
    return count


def shutdown_distributed():
    """Destroy the process group while the interpreter is still intact.

    Call it after the last reference to the runner is gone: its DDP wrapper
    holds the group. Left to exit-time destructors, gloo's worker threads
    sometimes abort a rank after a successful run ("terminate called without
    an active exception").
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
    gc.collect()  # frees the group (DDP <-> module cycles) and its threads
