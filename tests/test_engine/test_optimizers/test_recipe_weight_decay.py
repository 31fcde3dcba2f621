"""DA-VPT's classification optimizer as a recipe config states it (AdamW,
paper App. A.2) with no decay for biases and 1-D tensors, ``WD_HEAD`` for
the classifier weight, ``WD`` for prompts and the [CLS] token, and gradient
values clipped to +-10; frozen tensors never reach the optimizer."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmseg_davpt  # noqa: F401  (registers the constructor)

pytest.importorskip('mmpretrain')
from mmpretrain.registry import MODELS  # noqa: E402
from tests._helpers import ROOT  # noqa: E402

DEMO = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')
LR = 1e-2
# Tensors unfrozen on top of the prompts, k/v biases and the head: the
# [CLS] token (3-D), the final LayerNorm (1-D weight and bias) and the patch
# embedding's bias.
EXTRA_TRAINABLE = ('backbone.cls_token', 'backbone.ln1.weight',
                   'backbone.ln1.bias', 'backbone.patch_embed.projection.bias')


@pytest.fixture(autouse=True)
def classification_scope():
    """Build in mmpretrain's scope, as a classification config does, without
    leaving it as the default for later tests."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def recipe_optim_wrapper(wd, wd_head):
    """The optimizer block a generated recipe config contains."""
    return dict(
        type='OptimWrapper',
        constructor='TrainableParamsOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=wd),
        clip_grad=dict(type='value', clip_value=10.),
        paramwise_cfg=dict(
            flat_decay_mult=0.0,
            custom_keys={'head.fc.weight': dict(weight_decay=wd_head)}))


def demo_classifier():
    """The demo config's DAVPTImageClassifier (random weights) with k/v
    biases tuned and EXTRA_TRAINABLE unfrozen."""
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.tune_params = 'kv'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    params = dict(model.named_parameters())
    for name in EXTRA_TRAINABLE:
        params[name].requires_grad_(True)
    return model


def released_rule(name, param, wd, wd_head):
    """Weight decay of a trainable tensor: none for biases and tensors with
    at most one dimension, ``wd_head`` for other tensors of the head, ``wd``
    for the rest."""
    if name.endswith('.bias') or param.ndim <= 1:
        return 0.
    return wd_head if 'head' in name else wd


@pytest.mark.parametrize('wd, wd_head', [(0.05, 5.0), (0.0, 5.0),
                                         (1.0, 20.0)])
def test_every_trainable_tensor_gets_the_recipe_weight_decay(wd, wd_head):
    model = demo_classifier()
    wrapper = build_optim_wrapper(model, recipe_optim_wrapper(wd, wd_head))
    decay_of = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in decay_of, 'tensor in two groups'
            decay_of[id(p)] = group['weight_decay']

    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert {id(named[n]) for n in trainable} == set(decay_of)
    assert all(id(p) not in decay_of for n, p in named.items()
               if n not in trainable)
    for name in trainable:
        assert decay_of[id(named[name])] == released_rule(
            name, named[name], wd, wd_head), name

    # Each category is present, with the value the recipe names.
    expected = {'backbone.prompts.0': wd, 'backbone.prompts.3': wd,
                'backbone.cls_token': wd, 'head.fc.weight': wd_head,
                'head.fc.bias': 0., 'backbone.ln1.weight': 0.,
                'backbone.ln1.bias': 0.,
                'backbone.patch_embed.projection.bias': 0.,
                'backbone.layers.0.attn.attn.k_bias': 0.,
                'backbone.layers.3.attn.attn.v_bias': 0.}
    for name, value in expected.items():
        assert decay_of[id(named[name])] == value, name
    assert len(trainable) == 4 + 4 + 2 + 2 * 4  # prompts, extra, head, k/v


def test_adamw_step_applies_each_groups_decay():
    """With zero gradients AdamW's update is the decoupled decay alone:
    p <- p * (1 - lr * wd) for the tensor's own wd; frozen tensors stay."""
    wd, wd_head = 0.0, 5.0
    model = demo_classifier()
    wrapper = build_optim_wrapper(model, recipe_optim_wrapper(wd, wd_head))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.
    wrapper.update_params(loss)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[name]), name
            continue
        decay = released_rule(name, p, wd, wd_head)
        torch.testing.assert_close(p.detach(),
                                   before[name] * (1 - LR * decay),
                                   rtol=1e-6, atol=0, msg=name)
    assert not torch.equal(model.head.fc.weight, before['head.fc.weight'])


def test_gradient_values_are_clipped_to_10():
    """The optimizer steps with clamp(raw gradient, -10, 10), as the recipe's
    ``clip_grad=dict(type='value', clip_value=10.)`` states."""
    model = demo_classifier()
    wrapper = build_optim_wrapper(model, recipe_optim_wrapper(0.05, 5.0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    stepped = {}
    wrapper.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: stepped.update(
            {id(p): p.grad.clone() for p in trainable if p.grad is not None}))

    torch.manual_seed(0)
    feats = model.extract_feat(torch.rand(2, 3, 32, 32))
    loss = 30 * sum(f.square().sum() for f in feats) + \
        1e4 * model.head.fc.weight.sum()
    raw = torch.autograd.grad(loss, trainable, retain_graph=True,
                              allow_unused=True)
    wrapper.update_params(loss)

    raw = {id(p): g for p, g in zip(trainable, raw) if g is not None}
    assert set(stepped) == set(raw)
    values = torch.cat([g.flatten() for g in raw.values()]).abs()
    assert (values > 10).any() and (values < 10).any()  # both regimes met
    for key, g in raw.items():
        torch.testing.assert_close(stepped[key], g.clamp(-10., 10.))


def test_custom_key_matching_no_parameter_is_an_error():
    model = demo_classifier()
    cfg = recipe_optim_wrapper(0.05, 5.0)
    cfg['paramwise_cfg']['custom_keys'] = {'head.weight': dict(
        weight_decay=5.0)}
    with pytest.raises(ValueError, match=r"\['head.weight'\] match no param"):
        build_optim_wrapper(model, cfg)


@pytest.mark.parametrize('rule, message', [
    (dict(weight_decay=-1.0), 'must be a finite number >= 0'),
    (dict(weight_decay='5'), 'must be a finite number >= 0'),
    (dict(weight_decay=5.0, decay_mult=2.0), 'both `weight_decay`'),
])
def test_bad_absolute_weight_decay_is_an_error(rule, message):
    cfg = recipe_optim_wrapper(0.05, 5.0)
    cfg['paramwise_cfg']['custom_keys'] = {'head.fc.weight': rule}
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(demo_classifier(), cfg)
