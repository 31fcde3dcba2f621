"""Frozen means frozen: optimizer steps move prompts and chosen biases only."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmseg.utils import register_all_modules

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models import PromptedVisionTransformer

TINY = dict(img_size=32, patch_size=8, embed_dims=64, num_layers=3,
            num_heads=4, patch_bias=True, final_norm=True)


@pytest.mark.parametrize('tune_params, expected_bias_names', [
    ((), set()),
    ('kv', {'attn.attn.k_bias', 'attn.attn.v_bias'}),
    (('q_bias', 'proj_bias', 'fc1_bias', 'fc2_bias', 'norm1_bias',
      'norm2_bias'), {
        'attn.attn.q_bias', 'attn.attn.out_proj.bias', 'ffn.layers.0.0.bias',
        'ffn.layers.1.bias', 'ln1.bias', 'ln2.bias'
    }),
])
def test_trainable_set(tune_params, expected_bias_names):
    model = PromptedVisionTransformer(**TINY, num_prompts=4,
                                      tune_params=tune_params)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {f'prompts.{i}' for i in range(3)} | {
        f'layers.{i}.{s}' for i in range(3) for s in expected_bias_names}
    assert trainable == expected


def test_full_finetuning_trains_everything():
    model = PromptedVisionTransformer(**TINY, freeze_pretrained=False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize('optimizer', [
    dict(type='AdamW', lr=1e-2, weight_decay=0.05),
    dict(type='SGD', lr=1e-1, momentum=0.9, weight_decay=1e-2),
])
def test_optimizer_steps_keep_frozen_weights_bit_identical(optimizer):
    register_all_modules()
    torch.manual_seed(0)
    model = PromptedVisionTransformer(**TINY, num_prompts=4,
                                      guided_layers=(-1, ),
                                      num_guided_prompts=2, tune_params='kv')
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params_before = {n: p.detach().clone()
                     for n, p in model.named_parameters()}
    wrapper = build_optim_wrapper(
        model,
        dict(type='OptimWrapper', optimizer=optimizer,
             constructor='TrainableParamsOptimWrapperConstructor',
             paramwise_cfg=dict(custom_keys={'prompts': dict(lr_mult=2.)})))
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups
                    for p in g['params']}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_optimizer == trainable

    for _ in range(3):
        outs = model(torch.randn(2, 3, 32, 32))
        wrapper.update_params(outs[0].square().mean())

    for name, p in model.named_parameters():
        changed = not torch.equal(p.detach(), params_before[name])
        assert changed == p.requires_grad, name
    # The packed q/k/v bias in the state dict: q part identical, k/v moved.
    after = model.state_dict()
    for i in range(3):
        key = f'layers.{i}.attn.attn.in_proj_bias'
        q_before, k_before, v_before = before[key].chunk(3)
        q_after, k_after, v_after = after[key].chunk(3)
        assert torch.equal(q_before, q_after)
        assert not torch.equal(k_before, k_after)
        assert not torch.equal(v_before, v_after)


def test_plain_optimizer_config_also_skips_frozen():
    register_all_modules()
    model = PromptedVisionTransformer(**TINY, num_prompts=2)
    wrapper = build_optim_wrapper(
        model,
        dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
             constructor='TrainableParamsOptimWrapperConstructor'))
    n_opt = sum(len(g['params']) for g in wrapper.optimizer.param_groups)
    assert n_opt == 3  # one prompt tensor per layer


def test_no_trainable_parameters_is_an_error():
    register_all_modules()
    model = PromptedVisionTransformer(**TINY, num_prompts=0)
    with pytest.raises(ValueError, match='no trainable parameters'):
        build_optim_wrapper(
            model,
            dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
                 constructor='TrainableParamsOptimWrapperConstructor'))


def test_released_recipe_set_trains_exactly_its_parameters():
    register_all_modules()
    torch.manual_seed(0)
    model = PromptedVisionTransformer(
        **TINY, num_prompts=4, out_type='mean_tokens',
        tune_params=('k_bias', 'v_bias', 'proj_bias', 'patch_embed_bias',
                     'fc2_bias', 'norm2_bias', 'norm1', 'cls_token'))
    model.init_weights()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = build_optim_wrapper(
        model,
        dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
             constructor='TrainableParamsOptimWrapperConstructor'))
    for _ in range(2):
        # mean_tokens reaches [CLS] only through attention, so cls_token
        # gets a gradient too
        wrapper.update_params(model(torch.randn(2, 3, 32, 32))[0].square()
                              .mean())
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p.detach(), before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed == trainable
    assert {'cls_token', 'patch_embed.projection.bias',
            'layers.2.ln1.weight', 'layers.0.attn.attn.v_bias'} <= changed
    assert 'layers.0.attn.attn.q_bias' not in changed
