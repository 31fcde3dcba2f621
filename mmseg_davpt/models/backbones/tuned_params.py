"""Which pretrained ViT parameters train next to the prompts, by name.

Names for ``tune_params`` of ``PromptedVisionTransformer``
and the parameters each selects. Per-layer entries match
``layers.<N>.<suffix>`` in every layer; model-level entries match one name.
"""
import re
from typing import Dict, Iterable, Sequence, Tuple, Union

import torch.nn as nn

# name -> per-layer parameter suffixes
LAYER_PARAMS: Dict[str, Tuple[str, ...]] = {
    'q_bias': ('attn.attn.q_bias', ),
    'k_bias': ('attn.attn.k_bias', ),
    'v_bias': ('attn.attn.v_bias', ),
    'proj_bias': ('attn.attn.out_proj.bias', ),
    'fc1_bias': ('ffn.layers.0.0.bias', ),
    'fc2_bias': ('ffn.layers.1.bias', ),
    'norm1_bias': ('ln1.bias', ),
    'norm2_bias': ('ln2.bias', ),
    'norm1': ('ln1.weight', 'ln1.bias'),
    'norm2': ('ln2.weight', 'ln2.bias'),
}
# name -> model-level parameter names
MODEL_PARAMS: Dict[str, Tuple[str, ...]] = {
    'patch_embed_bias': ('patch_embed.projection.bias', ),
    'cls_token': ('cls_token', ),
    'final_norm': ('ln1.weight', 'ln1.bias'),
    'final_norm_bias': ('ln1.bias', ),
}
# Shortcuts. 'kv' is DA-VPT+'s efficient bias tuning (paper Sec. 3.5 and
# App. C).
ALIASES: Dict[str, Tuple[str, ...]] = {
    'kv': ('k_bias', 'v_bias'),
    'qkv': ('q_bias', 'k_bias', 'v_bias'),
    'none': (),
}


def resolve_tuned_params(names: Union[str, Sequence[str], None]
                         ) -> Tuple[str, ...]:
    """``'kv'`` / ``('k_bias', 'norm1', 'cls_token')`` -> sorted tuple of
    names from ``LAYER_PARAMS`` and ``MODEL_PARAMS``.

    Raises:
        ValueError: an unknown name, listing the valid ones.
    """
    if names is None:
        return ()
    names = [names] if isinstance(names, str) else list(names)
    out = set()
    for name in names:
        if name in ALIASES:
            out.update(ALIASES[name])
        elif name in LAYER_PARAMS or name in MODEL_PARAMS:
            out.add(name)
        else:
            raise ValueError(
                f'Unknown parameter group {name!r} in tune_params; choose from '
                f'{sorted(LAYER_PARAMS) + sorted(MODEL_PARAMS)} or the '
                f'shortcuts {sorted(ALIASES)}.')
    return tuple(sorted(out))


def _selected(name: str, tuned: Iterable[str]) -> Tuple[bool, set]:
    """Whether parameter ``name`` belongs to a ``tuned`` entry, and which."""
    hits = set()
    m = re.fullmatch(r'layers\.\d+\.(.+)', name)
    for entry in tuned:
        if m and m.group(1) in LAYER_PARAMS.get(entry, ()):
            hits.add(entry)
        elif name in MODEL_PARAMS.get(entry, ()):
            hits.add(entry)
    return bool(hits), hits


def set_trainable(backbone: nn.Module, tuned: Sequence[str],
                  freeze_pretrained: bool = True) -> None:
    """Freeze ``backbone`` except its prompts (``prompts.*``) and the
    ``tuned`` entries; ``freeze_pretrained=False`` trains everything.

    Raises:
        ValueError: a ``tuned`` entry that selects no parameter of this
            backbone (e.g. ``'patch_embed_bias'`` with ``patch_bias=False``).
    """
    if not freeze_pretrained:
        for param in backbone.parameters():
            param.requires_grad = True
        return
    used = set()
    for name, param in backbone.named_parameters():
        selected, hits = _selected(name, tuned)
        used |= hits
        param.requires_grad = name.startswith('prompts.') or selected
    unused = sorted(set(tuned) - used)
    if unused:
        raise ValueError(
            f'tune_params entries {unused} select no parameter '
            'of this backbone (check qkv_bias, patch_bias and final_norm)')
