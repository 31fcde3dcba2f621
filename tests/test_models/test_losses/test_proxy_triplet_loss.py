"""proxy_triplet_loss / ProxyTripletLoss against a float64 loop over all
(sample, positive prompt, negative prompt) triplets."""
import math

import pytest
import torch

from mmseg_davpt.models import ProxyTripletLoss
from mmseg_davpt.models.losses import proxy_triplet_loss


def loop_reference(x, y, p, margin, scale=1.):
    """mean over (x, z != y_x) of max(0, s(x, p_z) - s(x, p_y) + margin)."""
    def cos(a, b):
        dot = sum(i * j for i, j in zip(a, b))
        return scale * dot / (math.sqrt(sum(i * i for i in a)) *
                              math.sqrt(sum(j * j for j in b)))

    xs, ps = x.double().tolist(), p.double().tolist()
    hinges = [max(0., cos(xi, pz) - cos(xi, ps[yi]) + margin)
              for xi, yi in zip(xs, y.tolist())
              for z, pz in enumerate(ps) if z != yi]
    return sum(hinges) / len(hinges)


@pytest.mark.parametrize('seed, M, P, D, margin, scale', [
    (0, 10, 4, 6, 0.1, 1.), (1, 25, 7, 8, 0.3, 1.), (2, 6, 2, 4, 0., 2.),
    (3, 9, 5, 5, 0.5, 1.)])
def test_matches_loop_reference(seed, M, P, D, margin, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, D, generator=g)
    p = torch.randn(P, D, generator=g)
    y = torch.randint(0, P, (M, ), generator=g)
    expected = loop_reference(x, y, p, margin, scale)
    got64 = proxy_triplet_loss(x.double(), y, p.double(), margin, scale)
    assert got64.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert proxy_triplet_loss(x, y, p, margin, scale).item() == \
        pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_hand_computed_value():
    # sample on its own prompt (cos 1), orthogonal to the other (cos 0)
    x = torch.tensor([[1., 0.]])
    p = torch.tensor([[3., 0.], [0., 2.]])
    assert proxy_triplet_loss(x, torch.tensor([0]), p, 0.1).item() == 0.
    # labelled with the orthogonal prompt: hinge 1 - 0 + 0.1
    assert proxy_triplet_loss(x, torch.tensor([1]), p, 0.1).item() == \
        pytest.approx(1.1)


def test_module_weight_name_and_registries():
    from mmseg.registry import MODELS
    loss = MODELS.build(dict(type='ProxyTripletLoss', margin=0.2,
                             loss_weight=2., loss_name='loss_cls'))
    assert isinstance(loss, ProxyTripletLoss) and loss.loss_name == 'loss_cls'
    g = torch.Generator().manual_seed(8)
    x, p = torch.randn(7, 4, generator=g), torch.randn(3, 4, generator=g)
    y = torch.tensor([0, 1, 2, 2, 0, 1, 1])
    assert loss(x, y, p).item() == pytest.approx(
        2. * loop_reference(x, y, p, 0.2), rel=1e-5)
    mmpretrain = pytest.importorskip('mmpretrain.registry')
    assert mmpretrain.MODELS.get('ProxyTripletLoss') is ProxyTripletLoss


def test_single_prompt_is_a_connected_zero():
    p = torch.randn(1, 4, requires_grad=True)
    loss = proxy_triplet_loss(torch.randn(3, 4),
                              torch.zeros(3, dtype=torch.long), p)
    assert loss.item() == 0.
    loss.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))


@pytest.mark.parametrize('kwargs, match', [
    (dict(margin=-0.2), r'margin=-0.2 is outside \[0, 1\]'),
    (dict(loss_weight=-1.), 'loss_weight must be >= 0'),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProxyTripletLoss(**kwargs)
