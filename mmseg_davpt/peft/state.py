"""Which state-dict entries are the trained (PEFT) part of a model."""
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ..utils.model import unwrap_model

# State-dict keys that pack several parameters into one tensor: the key's
# last name -> the parameter names behind it in the same module.
# ``FusedSelfAttention`` keeps q/k/v biases as three parameters (so DA-VPT+
# can train k and v only) but saves them as ``nn.MultiheadAttention``'s packed
# ``in_proj_bias``.
PACKED_KEYS = {'in_proj_bias': ('q_bias', 'k_bias', 'v_bias')}


def _params_behind_key(key: str, params: Dict[str, nn.Parameter]
                       ) -> Optional[List[nn.Parameter]]:
    """The parameters whose values a state-dict ``key`` holds, or ``None``
    when the key is not a parameter (a buffer or something unknown)."""
    if key in params:
        return [params[key]]
    prefix, _, name = key.rpartition('.')
    if name in PACKED_KEYS:
        parts = [params.get(f'{prefix}.{p}' if prefix else p)
                 for p in PACKED_KEYS[name]]
        if all(p is not None for p in parts):
            return parts
    return None


def _is_base_key(key: str, params: Dict[str, nn.Parameter]) -> bool:
    """Whether ``key`` belongs to the frozen base ViT: a backbone parameter
    (or packed parameter) with no trainable part, or a backbone buffer.

    Everything else is PEFT state. That includes frozen parameters outside
    the backbone (none in our configs): the base checkpoint does not hold
    them, so only the PEFT file can restore them.
    """
    if not key.startswith('backbone.'):
        return False
    behind = _params_behind_key(key, params)
    if behind is None:
        return True  # a backbone buffer: comes with the base weights
    return not any(p.requires_grad for p in behind)


def peft_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """What training changes, keyed as ``model.state_dict()``.

    Every parameter with ``requires_grad`` (prompts ``(N, D)``, tuned biases,
    heads), plus all buffers outside the backbone (BN running statistics of
    the heads, ``metric_guidance.mapping.*``). A packed q/k/v bias
    ``backbone.layers.N.attn.attn.in_proj_bias`` ``(3D,)`` is saved whole as
    soon as one of its parts trains (DA-VPT+ ``tune_params='kv'``); its frozen
    q part equals the base's, so loading it back changes nothing there.

    Returns:
        ``{key: tensor}`` (detached, on the model's device).
    """
    model = unwrap_model(model)
    params = dict(model.named_parameters())
    return {
        k: v
        for k, v in model.state_dict().items() if not _is_base_key(k, params)
    }
