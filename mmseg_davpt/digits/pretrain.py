"""Supervised pretraining of the digits ViT on digits 0-4 (the stand-in for
ImageNet pretraining; the one training loop of the project outside
mmengine's runner), saved in timm's key layout so that it reaches every
config the way real weights do: through ``tools/convert_vit_checkpoint.py``.
"""
import math
import os
import os.path as osp
import re
import time
from contextlib import contextmanager
from typing import Callable, Dict, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.backbones import PromptedVisionTransformer
from ..models.backbones.vit_checkpoint import timm_to_mmseg
from . import DIGITS_IMG_SIZE, DIGITS_MEAN, DIGITS_STD, UPSTREAM_CLASSES
from .images import digit_images

# The digits ViT: 32x32 input, 4x4 patches (8x8 grid + [CLS]), 64 dims,
# 4 pre-norm layers of 4 heads, timm's LayerNorm eps and patch bias.
DIGITS_VIT = dict(
    img_size=DIGITS_IMG_SIZE, patch_size=4, embed_dims=64, num_layers=4,
    num_heads=4, mlp_ratio=4, qkv_bias=True, patch_bias=True,
    norm_cfg=dict(type='LN', eps=1e-6), final_norm=True, with_cls_token=True,
    out_type='cls_token', out_indices=-1, drop_path_rate=0.)

# MMSegmentation ViT names -> timm's (the inverse of the converter's rules).
_MMSEG_TO_TIMM = [
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^layers\.(\d+)\.ln1\.', r'blocks.\1.norm1.'),
    (r'^layers\.(\d+)\.ln2\.', r'blocks.\1.norm2.'),
    (r'^layers\.(\d+)\.attn\.attn\.in_proj_', r'blocks.\1.attn.qkv.'),
    (r'^layers\.(\d+)\.attn\.attn\.out_proj\.', r'blocks.\1.attn.proj.'),
    (r'^layers\.(\d+)\.ffn\.layers\.0\.0\.', r'blocks.\1.mlp.fc1.'),
    (r'^layers\.(\d+)\.ffn\.layers\.1\.', r'blocks.\1.mlp.fc2.'),
    (r'^ln1\.', 'norm.'),
    (r'^(cls_token|pos_embed)$', r'\1'),
]


def build_digits_vit(**overrides) -> nn.Module:
    """The digits ViT as the project's ``PromptedVisionTransformer`` with no
    prompts and every weight trainable; ``forward`` gives the final [CLS]
    feature after the last LayerNorm, ``((B, 64),)``."""
    cfg = dict(DIGITS_VIT, num_prompts=0, freeze_pretrained=False)
    cfg.update(overrides)
    return PromptedVisionTransformer(**cfg)


def mmseg_to_timm(state: Mapping[str, torch.Tensor]) -> Dict[str,
                                                             torch.Tensor]:
    """A plain ViT's MMSegmentation-layout state dict in timm's key layout.

    Raises:
        ValueError: a key with no timm counterpart (prompts, LayerScale...).
    """
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, repl in _MMSEG_TO_TIMM:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                out[new_key] = value.detach().clone()
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'no timm name for {unknown}: only a plain ViT '
                         '(no prompts, LayerScale or registers) maps to timm')
    return out


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 grey images ``(N, H, W)`` -> ``(N, 3, H, W)`` float, grey
    replicated and normalised with ``DIGITS_MEAN`` / ``DIGITS_STD``, as the
    digits configs' data preprocessor does."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None]
    mean = torch.tensor(DIGITS_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def random_shift(images: torch.Tensor, max_shift: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Translate each image ``(B, C, H, W)`` by an independent random
    offset in ``[-max_shift, max_shift]`` px along each axis, filling the
    uncovered border with zeros (black paper before normalisation)."""
    if max_shift <= 0:
        return images
    B, _, H, W = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, B), generator=generator)
    return torch.stack([padded[b, :, dy[b]:dy[b] + H, dx[b]:dx[b] + W]
                        for b in range(B)])


@contextmanager
def _deterministic(threads: int):
    """Deterministic kernels on ``threads`` torch threads (float reductions
    depend on the thread count), restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.set_num_threads(threads_before)


def random_digits_vit_state(seed: int = 0, arch: Optional[dict] = None
                            ) -> Dict[str, torch.Tensor]:
    """The digits ViT (``DIGITS_VIT`` updated by ``arch``) before
    pretraining (MMSegmentation's ViT init drawn from ``seed``) in timm's
    layout, with a zero 5-class head: the "random ViT of the same shape"
    the probe compares against."""
    torch.manual_seed(seed)
    backbone = build_digits_vit(**(arch or {}))
    backbone.init_weights()
    state = mmseg_to_timm(backbone.state_dict())
    num_classes = len(UPSTREAM_CLASSES)
    state['head.weight'] = torch.zeros(num_classes, backbone.embed_dims)
    state['head.bias'] = torch.zeros(num_classes)
    return state


def pretrain_digits_vit(out: str,
                        seed: int = 0,
                        epochs: int = 60,
                        batch_size: int = 32,
                        lr: float = 2e-3,
                        weight_decay: float = 0.05,
                        warmup_epochs: int = 1,
                        max_shift: int = 2,
                        arch: Optional[dict] = None,
                        threads: int = 1,
                        log: Optional[Callable[[str], None]] = print) -> str:
    """Train the digits ViT plus a linear head on every scan of digits 0-4
    (cross-entropy, AdamW, linear warm-up then cosine decay per step, random
    shifts of up to ``max_shift`` px) and save it in timm's key layout
    (``head.*`` included; the converter drops it).

    ``arch`` updates ``DIGITS_VIT`` (e.g. ``dict(patch_size=8)`` for a
    cheaper variant in tests). Deterministic from ``seed`` for a given
    ``threads`` (the float reductions of the matrix products depend on the
    torch thread count; one thread also makes the result the same on every
    machine, and is about as fast as two for these small matrices).

    Returns:
        ``out``.
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f'need epochs >= 0 and batch_size >= 1, got '
                         f'{epochs} and {batch_size}')
    if osp.abspath(out).endswith('.py'):
        raise ValueError(f'refusing to write weights to a .py file: {out}')
    say = log or (lambda msg: None)
    images, digits, _ = digit_images(UPSTREAM_CLASSES, DIGITS_IMG_SIZE)
    x = normalise(images)
    # Scanned digits are 0-4 already, so they are the class ids.
    y = torch.from_numpy(digits)
    state = random_digits_vit_state(seed, arch)
    backbone = build_digits_vit(**(arch or {}))
    backbone.load_state_dict(timm_to_mmseg(state))
    head = nn.Linear(backbone.embed_dims, len(UPSTREAM_CLASSES))
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    params = list(backbone.parameters()) + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch

    def lr_factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) /
                                   max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_factor)
    g = torch.Generator().manual_seed(seed)
    say(f'pretraining the digits ViT on {len(x)} scans of digits '
        f'{UPSTREAM_CLASSES} for {epochs} epochs (seed {seed}, '
        f'{threads} torch thread(s))')
    start = time.time()
    backbone.train()
    with _deterministic(threads):
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=g)
            loss_sum, correct = 0., 0
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                logits = head(backbone(random_shift(x[idx], max_shift,
                                                    g))[0])
                loss = F.cross_entropy(logits, y[idx])
                optim.zero_grad()
                loss.backward()
                optim.step()
                sched.step()
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
            say(f'epoch {epoch + 1}/{epochs}: loss '
                f'{loss_sum / len(x):.4f}, train acc '
                f'{correct / len(x):.1%} ({time.time() - start:.1f} s)')
    state = mmseg_to_timm(backbone.state_dict())
    state['head.weight'] = head.weight.detach().clone()
    state['head.bias'] = head.bias.detach().clone()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(state, out)
    say(f'wrote the pretrained digits ViT (timm layout) to {out}')
    return out
