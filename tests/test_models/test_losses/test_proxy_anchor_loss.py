"""proxy_anchor_loss against a direct float64 loop over the definition."""
import math

import pytest
import torch

from mmseg_davpt.models import proxy_anchor_loss


def loop_reference(x, y, p, margin, alpha, scale=1.):
    """Proxy-Anchor written out element by element in Python floats, with
    every cosine multiplied by ``scale``."""
    x = x.double().tolist()
    p = p.double().tolist()
    y = y.tolist()

    def cos(a, b):
        dot = sum(i * j for i, j in zip(a, b))
        return scale * dot / (math.sqrt(sum(i * i for i in a)) *
                              math.sqrt(sum(j * j for j in b)))

    pos_sum, neg_sum, n_pos = 0., 0., 0
    for k, proxy in enumerate(p):
        pos = [math.exp(-alpha * (cos(xi, proxy) - margin))
               for xi, yi in zip(x, y) if yi == k]
        neg = [math.exp(alpha * (cos(xi, proxy) + margin))
               for xi, yi in zip(x, y) if yi != k]
        if pos:
            n_pos += 1
            pos_sum += math.log(1 + sum(pos))
        neg_sum += math.log(1 + sum(neg))
    return (pos_sum / n_pos if n_pos else 0.) + neg_sum / len(p)


@pytest.mark.parametrize('seed, M, P, D, margin, alpha', [
    (0, 12, 5, 8, 0.1, 32.),
    (1, 40, 10, 16, 0.1, 32.),
    (2, 7, 3, 4, 0.2, 8.),
    (3, 30, 20, 16, 0.1, 32.),  # most proxies without positives
])
def test_matches_loop_reference(seed, M, P, D, margin, alpha):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, D, generator=g)
    p = torch.randn(P, D, generator=g)
    y = torch.randint(0, min(P, 6), (M, ), generator=g)
    expected = loop_reference(x, y, p, margin, alpha)
    got32 = proxy_anchor_loss(x, y, p, margin, alpha)
    got64 = proxy_anchor_loss(x.double(), y, p.double(), margin, alpha)
    assert got32.dtype == torch.float32
    assert got64.item() == pytest.approx(expected, rel=1e-10, abs=1e-10)
    assert got32.item() == pytest.approx(expected, rel=1e-5)


def test_hand_computed_value():
    # two orthogonal proxies, one sample on each: cos = 1 to its own proxy,
    # 0 to the other.
    x = torch.tensor([[1., 0.], [0., 1.]])
    p = torch.tensor([[2., 0.], [0., 3.]])
    y = torch.tensor([0, 1])
    a, m = 32., 0.1
    pos = math.log(1 + math.exp(-a * (1 - m)))
    neg = math.log(1 + math.exp(a * (0 + m)))
    assert proxy_anchor_loss(x, y, p, m, a).item() == pytest.approx(
        pos + neg, rel=1e-6)


def test_stable_for_extreme_inputs_and_gradients_finite():
    x = torch.tensor([[1e-30, 0.], [1e30, 1e30], [-5., 5.]],
                     requires_grad=True)
    p = torch.tensor([[1., 0.], [0., 1.], [-1., -1.]], requires_grad=True)
    loss = proxy_anchor_loss(x, torch.tensor([0, 0, 1]), p, alpha=1e4)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and torch.isfinite(p.grad).all()


def test_no_positive_and_no_sample_cases():
    p = torch.randn(4, 8, requires_grad=True)
    empty = proxy_anchor_loss(torch.zeros(0, 8), torch.zeros(0,
                                                             dtype=torch.long),
                              p)
    assert empty.item() == 0.
    empty.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))


def test_gradients_reach_both_inputs():
    x = torch.randn(6, 8, requires_grad=True)
    p = torch.randn(3, 8, requires_grad=True)
    proxy_anchor_loss(x, torch.tensor([0, 0, 1, 1, 2, 2]), p).backward()
    assert x.grad.abs().sum() > 0 and p.grad.abs().sum() > 0


def test_gradcheck_float64():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0, 0])
    assert torch.autograd.gradcheck(
        lambda a, b: proxy_anchor_loss(a, y, b, alpha=4.), (x, p))


@pytest.mark.parametrize('labels, match', [
    (torch.tensor([0, 3]), r'labels must lie in \[0, 3\)'),
    (torch.tensor([0]), 'labels must have shape'),
])
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        proxy_anchor_loss(torch.randn(2, 4), labels, torch.randn(3, 4))


# ---------------------------------------------------------------- the module
def test_module_is_weighted_named_and_registered_in_both_registries():
    from mmseg.registry import MODELS
    from mmseg_davpt.models import ProxyAnchorLoss
    loss = MODELS.build(dict(type='ProxyAnchorLoss', margin=0.2, alpha=8.,
                             loss_weight=0.05, loss_name='loss_prompt'))
    assert isinstance(loss, ProxyAnchorLoss)
    assert loss.loss_name == 'loss_prompt'
    g = torch.Generator().manual_seed(4)
    x, p = torch.randn(9, 6, generator=g), torch.randn(3, 6, generator=g)
    y = torch.randint(0, 3, (9, ), generator=g)
    assert loss(x, y, p).item() == pytest.approx(
        0.05 * loop_reference(x, y, p, 0.2, 8.), rel=1e-5)
    mmpretrain = pytest.importorskip('mmpretrain.registry')
    assert mmpretrain.MODELS.get('ProxyAnchorLoss') is ProxyAnchorLoss


@pytest.mark.parametrize('scale', [5., 0.5])
def test_similarity_scale_multiplies_every_cosine(scale):
    # the released recipes' loss_vpt_scale_ratio: normalised proxies times
    # the scale, so s(x, p) = scale * cos before alpha and margin apply
    g = torch.Generator().manual_seed(5)
    x, p = torch.randn(11, 6, generator=g), torch.randn(4, 6, generator=g)
    y = torch.randint(0, 4, (11, ), generator=g)
    expected = loop_reference(x, y, p, 0.1, 32., scale=scale)
    got = proxy_anchor_loss(x.double(), y, p.double(), 0.1, 32., scale)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_zero_similarity_scale_warns_and_gives_a_constant():
    from mmseg_davpt.models import ProxyAnchorLoss
    with pytest.warns(UserWarning, match='similarity_scale=0'):
        loss = ProxyAnchorLoss(similarity_scale=0.)
    x, p = torch.randn(6, 4), torch.randn(3, 4, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    value = loss(x, y, p)
    # every s(x, p) = 0: log(1 + 2 e^{alpha m}) per proxy, on both sides
    expected = math.log(1 + 2 * math.exp(32 * 0.1)) + \
        math.log(1 + 4 * math.exp(32 * 0.1))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert p.grad.abs().max() == 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(loss_weight=-1.), 'loss_weight must be >= 0, got loss_weight=-1'),
    (dict(alpha=0.), 'alpha must be > 0, got alpha=0'),
    (dict(margin=-0.1), r'margin=-0.1 is outside \[0, 1\]'),
    (dict(margin=1.5), r'margin=1.5 is outside \[0, 1\]'),
    (dict(similarity_scale=-1.), 'similarity_scale must be >= 0'),
    (dict(loss_name='prompt'), "loss_name must start with 'loss_'"),
])
def test_bad_settings_are_errors_naming_key_and_value(kwargs, match):
    from mmseg_davpt.models import ProxyAnchorLoss
    with pytest.raises(ValueError, match=match):
        ProxyAnchorLoss(**kwargs)


def test_margin_range_follows_the_similarity_scale():
    from mmseg_davpt.models import ProxyAnchorLoss
    assert ProxyAnchorLoss(margin=2., similarity_scale=5.).margin == 2.
