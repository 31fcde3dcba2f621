"""A fingerprint of the frozen base weights a PEFT file belongs on."""
import hashlib
from typing import Iterable, Iterator, Tuple

import torch
import torch.nn as nn

from ..utils.model import unwrap_model


def _frozen_base_tensors(model: nn.Module
                         ) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of the frozen backbone, sorted by name.

    Parameters by their own (split) names, so the frozen q bias is included
    and trained k/v biases are not; persistent buffers as well.
    """
    backbone = unwrap_model(model).backbone
    tensors = {
        n: p
        for n, p in backbone.named_parameters() if not p.requires_grad
    }
    persistent = set(backbone.state_dict(keep_vars=True))
    tensors.update((n, b) for n, b in backbone.named_buffers()
                   if n in persistent)
    for name in sorted(tensors):
        yield name, tensors[name]


def base_fingerprint(model: nn.Module) -> str:
    """sha256 (hex) over the frozen backbone's tensors: names, dtypes, shapes
    and bytes, in sorted name order. Equal fingerprints mean bit-identical
    base weights, independent of the device they sit on."""
    return tensors_fingerprint(_frozen_base_tensors(model))


def tensors_fingerprint(named: Iterable[Tuple[str, torch.Tensor]]) -> str:
    """sha256 (hex) over ``(name, tensor)`` pairs in the given order:
    names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in named:
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}|{t.dtype}|{tuple(t.shape)}\n'.encode())
        # raw bytes through a uint8 view: works for every dtype, including
        # those numpy lacks (bfloat16)
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
