"""Per-source converters of ViT weights to MMSegmentation's layout.

MMSegmentation's ``VisionTransformer`` (and the prompted one) name weights
``patch_embed.projection``, ``layers.N.ln1``, ``layers.N.attn.attn.in_proj_*``,
``layers.N.attn.attn.out_proj``, ``layers.N.ffn.layers.{0.0,1}``, ``ln1``
(final norm). Converted here: timm (``blocks.N.attn.qkv``,
``blocks.N.mlp.fc1``, ``norm``...), e.g. the ImageNet-21k ViT-L/16 SETR starts
from; the ViT authors' ``.npz`` (JAX/Flax names, HWIO kernels, per-head
q/k/v, to timm's layout); mmpretrain (``layers.N.attn.qkv``,
``layers.N.attn.proj``), e.g. its MAE and MoCo v3 ViT-B and its DINOv2 ViTs.
The DINOv2 authors' layout has its own module, ``dinov2``.
"""
import re
from typing import Dict, Mapping

import numpy as np
import torch

StateDict = Dict[str, torch.Tensor]

TIMM_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.attn.in_proj_'),
    (r'^blocks\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
]
_MMPRETRAIN_RULES = [
    (r'^layers\.(\d+)\.attn\.qkv\.', r'layers.\1.attn.attn.in_proj_'),
    (r'^layers\.(\d+)\.attn\.proj\.', r'layers.\1.attn.attn.out_proj.'),
    (r'^pre_norm\.', 'ln_pre.'),
]
# Classification heads never belong to a backbone.
_DROP = re.compile(r'^(head|heads|pre_logits|fc_norm)\.|^head$')


def _rename(state: Mapping[str, torch.Tensor], rules) -> StateDict:
    out = {}
    for key, value in state.items():
        if _DROP.match(key):
            continue
        for pattern, repl in rules:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                key = new_key
                break
        out[key] = value
    return out


def timm_to_mmseg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """timm ViT state dict -> MMSegmentation ViT keys (drops ``head.*``)."""
    return _rename(state, TIMM_RULES)


def mmpretrain_to_mmseg(state: Mapping[str, torch.Tensor]) -> StateDict:
    """mmpretrain ViT backbone keys -> MMSegmentation ViT keys."""
    return _rename(state, _MMPRETRAIN_RULES)


def npz_to_timm(weights: Mapping[str, np.ndarray]) -> StateDict:
    """The ViT authors' ``.npz`` (``ViT-B_16.npz`` ...) -> timm ViT keys.

    Kernels are stored HWIO (conv) and in x out (dense), attention per head;
    torch wants OIHW and out x in, with q/k/v packed into one matrix.
    """
    def t(name: str) -> torch.Tensor:
        if name not in weights:
            raise KeyError(f'{name!r} not in the .npz; is this a plain ViT '
                           '(not a hybrid ResNet-ViT) checkpoint?')
        return torch.from_numpy(np.asarray(weights[name], dtype=np.float32))

    out = {
        'patch_embed.proj.weight': t('embedding/kernel').permute(3, 2, 0, 1),
        'patch_embed.proj.bias': t('embedding/bias'),
        'cls_token': t('cls'),
        'pos_embed': t('Transformer/posembed_input/pos_embedding'),
        'norm.weight': t('Transformer/encoder_norm/scale'),
        'norm.bias': t('Transformer/encoder_norm/bias'),
    }
    blocks = sorted({
        int(m.group(1))
        for k in weights
        if (m := re.match(r'Transformer/encoderblock_(\d+)/', k))
    })
    if not blocks:
        raise KeyError('no Transformer/encoderblock_* entries in the .npz')
    for i in blocks:
        src = f'Transformer/encoderblock_{i}/'
        dst = f'blocks.{i}.'
        att = src + 'MultiHeadDotProductAttention_1/'
        # query/key/value kernels: (D, heads, head_dim) -> (D_out, D_in)
        qkv_w = [t(att + f'{n}/kernel').flatten(1).T
                 for n in ('query', 'key', 'value')]
        qkv_b = [t(att + f'{n}/bias').flatten() for n in ('query', 'key',
                                                           'value')]
        out.update({
            dst + 'norm1.weight': t(src + 'LayerNorm_0/scale'),
            dst + 'norm1.bias': t(src + 'LayerNorm_0/bias'),
            dst + 'attn.qkv.weight': torch.cat(qkv_w),
            dst + 'attn.qkv.bias': torch.cat(qkv_b),
            # out kernel: (heads, head_dim, D) -> (D_out, D_in)
            dst + 'attn.proj.weight': t(att + 'out/kernel').flatten(0, 1).T,
            dst + 'attn.proj.bias': t(att + 'out/bias'),
            dst + 'norm2.weight': t(src + 'LayerNorm_2/scale'),
            dst + 'norm2.bias': t(src + 'LayerNorm_2/bias'),
            dst + 'mlp.fc1.weight': t(src + 'MlpBlock_3/Dense_0/kernel').T,
            dst + 'mlp.fc1.bias': t(src + 'MlpBlock_3/Dense_0/bias'),
            dst + 'mlp.fc2.weight': t(src + 'MlpBlock_3/Dense_1/kernel').T,
            dst + 'mlp.fc2.bias': t(src + 'MlpBlock_3/Dense_1/bias'),
        })
    return {k: v.contiguous() for k, v in out.items()}
