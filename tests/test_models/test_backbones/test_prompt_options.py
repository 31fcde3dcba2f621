"""Prompt options of ``PromptedVisionTransformer`` set through its config,
each checked against what the option must do to the prompts or the forward
(so a backbone that ignored the option would fail)."""
import math

import pytest
import torch
from mmseg.registry import MODELS

import mmseg_davpt  # noqa: F401

D, LAYERS = 64, 3


def backbone(**kwargs):
    cfg = dict(type='PromptedVisionTransformer', img_size=32, patch_size=8,
               embed_dims=D, num_layers=LAYERS, num_heads=4,
               out_indices=(LAYERS - 1, ), num_prompts=4,
               guided_layers=(LAYERS - 1, ), num_guided_prompts=3)
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def images(seed=1):
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(
        seed))


def test_prompt_dropout_one_drops_every_prompt_zero_drops_none():
    x = images()
    model = backbone(prompt_dropout=1.)
    dropped = model.train()(x)[0]
    # expectation: the same model in eval mode with all prompts set to zero
    with torch.no_grad():
        for p in model.prompts.parameters():
            p.zero_()
    assert torch.allclose(dropped, model.eval()(x)[0], atol=1e-6)

    kept = backbone(prompt_dropout=0.)
    assert torch.equal(kept.train()(x)[0], kept.eval()(x)[0])
    # and the zeroed prompts matter: not the same as the trained prompts
    assert not torch.allclose(dropped, kept.eval()(x)[0], atol=1e-3)


def xavier_bound(num_layers, num_prompts):
    """xavier_uniform bound of one ``(L_g, N, D)`` group of prompts."""
    return math.sqrt(6. / (num_prompts * D + num_layers * D))


@pytest.mark.parametrize('init, patch_size, bounds', [
    # VPT: U(-v, v), v = sqrt(6 / (3 p^2 + D)), every layer alike
    ('vpt', 16, [math.sqrt(6. / (3 * 16**2 + D))] * LAYERS),
    # released code: one xavier draw per group (2 ordinary layers of 4
    # prompts, 1 guided layer of 3), optionally divided by 8
    ('xavier', 16, [xavier_bound(2, 4)] * 2 + [xavier_bound(1, 3)]),
    ('xavier_div8', 16, [xavier_bound(2, 4) / 8] * 2 +
     [xavier_bound(1, 3) / 8]),
])
def test_prompt_init_draws_from_the_named_distribution(init, patch_size,
                                                       bounds):
    model = backbone(prompt_init=init, patch_size=patch_size)
    for layer, bound in enumerate(bounds):
        prompts = model.layer_prompts(layer).detach()
        # uniform on (-bound, bound): the largest of >= 192 draws is close
        # to the bound (below 0.9 bound with probability < 1e-8)
        assert prompts.abs().max() <= bound + 1e-7, (init, layer)
        assert prompts.abs().max() > 0.9 * bound, (init, layer)


def test_prompt_norm_l2_feeds_unit_prompts_to_the_layers():
    x = images()
    plain, normed = backbone(), backbone(prompt_norm='l2')
    normed.load_state_dict(plain.state_dict())  # same stored prompts
    for layer in range(LAYERS):
        stored = plain.layer_prompts(layer)
        assert torch.allclose(normed.layer_prompts(layer),
                              stored / stored.norm(dim=-1, keepdim=True))
    # expectation: the plain backbone with prompts normalised by hand
    with torch.no_grad():
        for p in plain.prompts.parameters():
            p.div_(p.norm(dim=-1, keepdim=True))
    assert torch.allclose(normed.eval()(x)[0], plain.eval()(x)[0],
                          atol=1e-5)


def test_prompt_attn_mask_keeps_prompt_queries_on_patches():
    x = images()
    masked, free = backbone(prompt_attn_mask=True), backbone()
    free.load_state_dict(masked.state_dict())
    # With the mask, [CLS] and prompt tokens never reach the prompt rows of
    # the first layer: changing [CLS] leaves those rows as they were.
    # Without it, they change.
    # (A random change: LayerNorm would remove a constant shift.)
    change = torch.randn(D, generator=torch.Generator().manual_seed(2))
    for model, same in ((masked, True), (free, False)):
        _, taps = model.forward_with_taps(x, tap_layers=(0, ))
        base = taps[0].context[:, 1:5]
        with torch.no_grad():
            model.cls_token.add_(change)
        _, taps = model.forward_with_taps(x, tap_layers=(0, ))
        assert torch.allclose(taps[0].context[:, 1:5], base,
                              atol=1e-6) == same


@pytest.mark.parametrize('guided, counts', [
    ((1, ), [4, 3, 4]),
    ((0, 2), [3, 4, 3]),
])
def test_guided_layers_and_num_guided_prompts_set_each_layers_prompts(
        guided, counts):
    model = backbone(guided_layers=guided, num_guided_prompts=3)
    assert [model.layer_prompts(i).shape[0] for i in range(LAYERS)] == counts
    assert model.guided_layers == guided
    # the tokens of a guided layer's forward hold its 3 prompts
    _, taps = model.forward_with_taps(images())
    assert sorted(taps) == list(guided)
    for layer in guided:
        assert taps[layer].prompts.shape == (3, D)
        assert taps[layer].num_prompt_tokens == 3
