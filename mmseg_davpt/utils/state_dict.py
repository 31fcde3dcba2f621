"""Comparing a checkpoint's state dict with a model's, and naming the
differences readably (a ViT-L has ~400 keys: they are grouped by layer
pattern and the list is cut short)."""
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Tuple

import torch

# Keys older checkpoints may lack; torch's BatchNorm fills them in itself.
OPTIONAL_KEY_SUFFIXES = ('num_batches_tracked', )


def _natural(key: str):
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', key)]


def _ranges(indices: List[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2,5'``."""
    out, start, prev = [], None, None
    for i in sorted(set(indices)) + [None]:
        if start is not None and (i is None or i != prev + 1):
            out.append(str(start) if start == prev else f'{start}-{prev}')
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ','.join(out)


def group_keys(keys: Iterable[str]) -> List[str]:
    """Keys that differ only in one layer index collapse into one entry:
    ``backbone.layers.{0-23}.ln1.weight``; keys with several indices into
    ``auxiliary_head.N.convs.N.weight (6 keys)``."""
    groups: Dict[str, List[Tuple[str, Tuple[int, ...]]]] = {}
    for key in sorted(keys, key=_natural):
        parts = key.split('.')
        pattern = '.'.join('N' if p.isdigit() else p for p in parts)
        index = tuple(int(p) for p in parts if p.isdigit())
        groups.setdefault(pattern, []).append((key, index))
    out = []
    for pattern, members in groups.items():
        if len(members) == 1:
            out.append(members[0][0])
        elif all(len(index) == 1 for _, index in members):
            out.append(pattern.replace(
                'N', '{' + _ranges([i[0] for _, i in members]) + '}'))
        else:
            out.append(f'{pattern} ({len(members)} keys)')
    return out


def describe_keys(keys: Iterable[str], limit: int = 8) -> str:
    """``group_keys`` joined by commas, at most ``limit`` groups."""
    groups = group_keys(keys)
    text = ', '.join(groups[:limit])
    if len(groups) > limit:
        text += f', ... ({len(groups) - limit} more groups)'
    return text


def count_by_module(keys: Iterable[str]) -> str:
    """``'auxiliary_head 36, decode_head 25'``: keys per top-level name."""
    counts: Dict[str, int] = {}
    for key in keys:
        top = key.split('.', 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return ', '.join(f'{name} {n}' for name, n in sorted(counts.items()))


@dataclass
class StateDictMismatch:
    """How a checkpoint's state dict differs from a model's."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    # key -> (shape in the checkpoint, shape in the model)
    shapes: Dict[str, Tuple[tuple, tuple]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self, limit: int = 8) -> str:
        """One indented line per kind of difference."""
        lines = []
        if self.missing:
            lines.append(
                f'  missing from the checkpoint ({len(self.missing)} keys: '
                f'{count_by_module(self.missing)}; they would keep their '
                'initial values): ' + describe_keys(self.missing, limit))
        if self.unexpected:
            lines.append(
                f'  not in the model ({len(self.unexpected)} keys: '
                f'{count_by_module(self.unexpected)}): '
                + describe_keys(self.unexpected, limit))
        if self.shapes:
            by_shapes: Dict[Tuple[tuple, tuple], List[str]] = {}
            for key, pair in self.shapes.items():
                by_shapes.setdefault(pair, []).append(key)
            parts = [
                f'{describe_keys(keys, limit)}: checkpoint {ckpt}, '
                f'model {model}'
                for (ckpt, model), keys in by_shapes.items()
            ]
            text = '; '.join(parts[:limit])
            if len(parts) > limit:
                text += f'; ... ({len(parts) - limit} more)'
            lines.append(
                f'  different shapes ({len(self.shapes)} keys): {text}')
        return '\n'.join(lines)

    def looks_backbone_only(self, model_keys: Iterable[str]) -> bool:
        """Whether the checkpoint's unknown keys are mostly (80 %) the
        model's backbone keys without the ``backbone.`` prefix: a pretrained
        ViT file (which may hold a few extras, e.g. a final norm)."""
        model_keys = set(model_keys)
        found = sum(f'backbone.{k}' in model_keys for k in self.unexpected)
        return bool(self.unexpected) and found >= 0.8 * len(self.unexpected)


def compare_state_dicts(checkpoint: Mapping[str, torch.Tensor],
                        model: Mapping[str, torch.Tensor]
                        ) -> StateDictMismatch:
    """Keys and shapes of ``checkpoint`` against ``model`` (both
    ``{key: tensor}``); ``num_batches_tracked`` may be missing."""
    mismatch = StateDictMismatch()
    mismatch.missing = [
        k for k in model
        if k not in checkpoint and not k.endswith(OPTIONAL_KEY_SUFFIXES)
    ]
    mismatch.unexpected = [k for k in checkpoint if k not in model]
    for key, value in checkpoint.items():
        if key in model and hasattr(value, 'shape') and \
                tuple(value.shape) != tuple(model[key].shape):
            mismatch.shapes[key] = (tuple(value.shape),
                                    tuple(model[key].shape))
    return mismatch


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> Mapping:
    """``state`` without DDP's ``module.`` key prefixes (``state`` itself
    when no key has one)."""
    if not any(k.startswith('module.') for k in state):
        return state
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}
