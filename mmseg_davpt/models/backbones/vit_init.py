"""Random initialisation of a ViT body, as MMSegmentation's
``VisionTransformer.init_weights`` does without a checkpoint (timm's
jax-style init)."""
import torch.nn as nn
from mmengine.model.weight_init import (constant_init, kaiming_init,
                                        trunc_normal_)
from torch.nn.modules.batchnorm import _BatchNorm


def init_vit_weights(backbone: nn.Module) -> None:
    """Re-draw ``pos_embed``, ``cls_token``, linear / conv / norm weights and
    the split q/k/v biases of ``backbone``'s layers. Prompts are left
    alone (``VisualPrompts`` initialises them)."""
    trunc_normal_(backbone.pos_embed, std=.02)
    trunc_normal_(backbone.cls_token, std=.02)
    if getattr(backbone, 'register_tokens', None) is not None:
        # DINOv2's init for registers
        nn.init.normal_(backbone.register_tokens, std=1e-6)
    for name, m in backbone.named_modules():
        if name.startswith('prompts'):
            continue
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                if 'ffn' in name:
                    nn.init.normal_(m.bias, mean=0., std=1e-6)
                else:
                    nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Conv2d):
            kaiming_init(m, mode='fan_in', bias=0.)
        elif isinstance(m, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)):
            constant_init(m, val=1.0, bias=0.)
    for layer in backbone.layers:
        attn = layer.attn.attn
        # the packed in_proj weight is no nn.Linear: initialise it here
        trunc_normal_(attn.in_proj_weight, std=.02)
        for bias in (attn.q_bias, attn.k_bias, attn.v_bias):
            if bias is not None:
                nn.init.constant_(bias, 0)
