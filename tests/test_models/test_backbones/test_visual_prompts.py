"""VisualPrompts: per-layer parameters, the three initialisations against
their formulas, L2 normalisation, insertion and the prompt-query mask."""
import math

import pytest
import torch

from mmseg_davpt.models import PromptedVisionTransformer
from mmseg_davpt.models.backbones.visual_prompts import VisualPrompts

D, P = 64, 8


def prompts(**kwargs):
    torch.manual_seed(0)
    cfg = dict(num_layers=4, embed_dims=D, num_prompts=10,
               guided_layers=(3, ), num_guided_prompts=5, patch_size=P)
    cfg.update(kwargs)
    return VisualPrompts(**cfg)


def assert_uniform(values, bound):
    """Values fill [-bound, bound] like a uniform draw: inside it, reaching
    close to both ends, variance bound^2 / 3."""
    values = values.flatten().double()
    assert values.abs().max() <= bound * (1 + 1e-6)
    assert values.max() > 0.9 * bound and values.min() < -0.9 * bound
    assert values.square().mean().item() == pytest.approx(bound**2 / 3,
                                                          rel=0.15)


def test_parameters_per_layer_keyed_by_layer_index():
    vp = prompts()
    assert vp.counts == (10, 10, 10, 5)
    assert [k for k, _ in vp.named_parameters()] == ['0', '1', '2', '3']
    assert vp['3'].shape == (5, D) and '3' in vp and '4' not in vp
    shallow = prompts(depth='shallow', guided_layers=())
    assert shallow.counts == (10, 0, 0, 0) and list(shallow) == ['0']
    assert shallow.layer_prompts(2).shape == (0, D)


def test_vpt_init_is_uniform_over_patch_fan_in():
    vp = prompts(init='vpt')
    bound = math.sqrt(6 / (3 * P * P + D))
    assert_uniform(torch.cat(list(vp.values())), bound)


@pytest.mark.parametrize('init, divide', [('xavier', 1), ('xavier_div8', 8)])
def test_released_xavier_init_per_group(init, divide):
    vp = prompts(init=init)
    # released code: one (layers, prompts, D) tensor per group, xavier
    # fan_in = prompts * D, fan_out = layers * D
    other = math.sqrt(6 / (D * (10 + 3))) / divide
    guided = math.sqrt(6 / (D * (5 + 1))) / divide
    assert_uniform(torch.cat([vp[str(i)] for i in range(3)]), other)
    assert_uniform(vp[str(3)], guided)


def test_l2_norm_applies_in_every_forward_not_to_the_parameter():
    vp = prompts(norm='l2')
    raw = vp[str(1)].detach().clone()
    used = vp.layer_prompts(1)
    torch.testing.assert_close(used.norm(dim=-1), torch.ones(10))
    torch.testing.assert_close(used, raw / raw.norm(dim=-1, keepdim=True))
    assert torch.equal(vp[str(1)], raw)
    # the inserted tokens are the normalised ones, and gradients reach the
    # parameter through the normalisation
    x = torch.randn(2, 1 + 16, D)
    out, n = vp.insert(x, 1, num_prefix=1, num_prompt_tokens=0)
    assert n == 10 and out.shape == (2, 1 + 10 + 16, D)
    torch.testing.assert_close(out[:, 1:11], used.detach().expand(2, -1, -1))
    out.sum().backward()
    assert vp[str(1)].grad is not None


def test_insert_replaces_previous_prompt_outputs():
    vp = prompts()
    x = torch.randn(2, 1 + 10 + 16, D)  # [cls, layer-2 outputs, patches]
    out, n = vp.insert(x, 3, num_prefix=1, num_prompt_tokens=10)
    assert n == 5
    assert torch.equal(out[:, :1], x[:, :1])
    assert torch.equal(out[:, 1:6], vp[str(3)].detach().expand(2, -1, -1))
    assert torch.equal(out[:, 6:], x[:, 11:])
    # a layer without prompts (VPT-Shallow after layer 0) keeps x
    shallow = prompts(depth='shallow', guided_layers=())
    same, n = shallow.insert(x, 2, num_prefix=1, num_prompt_tokens=10)
    assert same is x and n == 10


def test_prompt_query_mask_layout():
    vp = prompts(query_mask=True)
    mask = vp.attention_mask(num_prefix=1, num_prompt_tokens=3,
                             num_tokens=7, device=torch.device('cpu'))
    expected = torch.ones(7, 7, dtype=torch.bool)
    expected[1:4, 0:4] = False  # prompt queries: no [CLS], no prompts
    assert torch.equal(mask, expected)
    assert vp.attention_mask(1, 0, 7, torch.device('cpu')) is None
    assert prompts().attention_mask(1, 3, 7, torch.device('cpu')) is None


@pytest.mark.parametrize('bad, match', [
    (dict(init='normal'), 'prompt_init must be one of'),
    (dict(norm='layer'), 'prompt_norm must be one of'),
    (dict(depth='shallow'), 'VPT-Shallow has prompts in layer 0 only'),
])
def test_bad_options_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        prompts(**bad)


def test_backbone_holds_prompts_under_layer_keys():
    model = PromptedVisionTransformer(
        img_size=32, patch_size=P, embed_dims=D, num_layers=4, num_heads=4,
        num_prompts=2, guided_layers=-1, num_guided_prompts=3,
        prompt_init='xavier_div8', prompt_norm='l2')
    keys = [k for k in model.state_dict() if k.startswith('prompts')]
    assert keys == ['prompts.0', 'prompts.1', 'prompts.2', 'prompts.3']
    assert model.prompts['3'].shape == (3, D)
    torch.testing.assert_close(model.layer_prompts(-1).norm(dim=-1),
                               torch.ones(3))
