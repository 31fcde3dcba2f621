"""Tuned-parameter names: exactly which backbone parameters train."""
import pytest

from mmseg_davpt.models import PromptedVisionTransformer
from mmseg_davpt.models.backbones.tuned_params import resolve_tuned_params

TINY = dict(img_size=32, patch_size=8, embed_dims=64, num_layers=3,
            num_heads=4, patch_bias=True, final_norm=True, num_prompts=2)
PROMPTS = {f'prompts.{i}' for i in range(3)}


def trainable(**kwargs):
    model = PromptedVisionTransformer(**{**TINY, **kwargs})
    return {n for n, p in model.named_parameters() if p.requires_grad}


def per_layer(*suffixes):
    return {f'layers.{i}.{s}' for i in range(3) for s in suffixes}


def test_released_recipe_set():
    # the recipes' k.bias, v.bias, proj.bias (its suffix rule also catches
    # the patch embedding's bias), fc2.bias, norm2.bias, norm1, cls_token
    got = trainable(tune_params=('k_bias', 'v_bias', 'proj_bias',
                                 'patch_embed_bias', 'fc2_bias',
                                 'norm2_bias', 'norm1', 'cls_token'))
    assert got == PROMPTS | per_layer(
        'attn.attn.k_bias', 'attn.attn.v_bias', 'attn.attn.out_proj.bias',
        'ffn.layers.1.bias', 'ln2.bias', 'ln1.weight', 'ln1.bias') | {
            'patch_embed.projection.bias', 'cls_token'}


@pytest.mark.parametrize('kwargs, expected', [
    (dict(), PROMPTS),
    (dict(tune_params='kv'), PROMPTS | per_layer('attn.attn.k_bias',
                                                 'attn.attn.v_bias')),
    (dict(tune_params=('norm1_bias', 'norm2_bias')),
     PROMPTS | per_layer('ln1.bias', 'ln2.bias')),
    (dict(tune_params=('q_bias', 'norm2')),
     PROMPTS | per_layer('attn.attn.q_bias', 'ln2.weight', 'ln2.bias')),
    (dict(tune_params=('final_norm', 'fc1_bias')),
     PROMPTS | per_layer('ffn.layers.0.0.bias') | {'ln1.weight',
                                                   'ln1.bias'}),
    (dict(tune_params='final_norm_bias'), PROMPTS | {'ln1.bias'}),
])
def test_exact_trainable_sets(kwargs, expected):
    assert trainable(**kwargs) == expected


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown parameter group 'k.bias' "
                       r"in tune_params; choose from \[.*'k_bias'.*"
                       r"'cls_token'.*shortcuts \[.*'kv'"):
        trainable(tune_params=('k.bias', ))
    assert resolve_tuned_params(('kv', 'norm1', 'k_bias')) == (
        'k_bias', 'norm1', 'v_bias')


@pytest.mark.parametrize('kwargs, missing', [
    (dict(patch_bias=False, tune_params='patch_embed_bias'),
     'patch_embed_bias'),
    (dict(final_norm=False, tune_params='final_norm'), 'final_norm'),
    (dict(qkv_bias=False, tune_params='kv'), 'k_bias'),
])
def test_names_matching_nothing_are_errors(kwargs, missing):
    with pytest.raises(ValueError, match=f"'{missing}'.* select no "
                       'parameter'):
        trainable(**kwargs)
