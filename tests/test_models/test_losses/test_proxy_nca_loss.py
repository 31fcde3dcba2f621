"""proxy_nca_loss / ProxyNCALoss against a float64 loop over squared
Euclidean distances (the vanilla Proxy-NCA definition)."""
import math

import pytest
import torch

from mmseg_davpt.models import ProxyNCALoss
from mmseg_davpt.models.losses import proxy_nca_loss


def loop_reference(x, y, p, scale=1.):
    """mean_x -log(exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z))), ``d`` the
    squared distance of the unit vectors, proxies stretched by ``scale``."""
    def unit(v):
        n = math.sqrt(sum(i * i for i in v))
        return [i / n for i in v]

    xs = [unit(v) for v in x.double().tolist()]
    ps = [[scale * i for i in unit(v)] for v in p.double().tolist()]

    def d(a, b):
        return sum((i - j) ** 2 for i, j in zip(a, b))

    total = 0.
    for xi, yi in zip(xs, y.tolist()):
        denominator = sum(math.exp(-d(xi, pz)) for z, pz in enumerate(ps)
                          if z != yi)
        total += -math.log(math.exp(-d(xi, ps[yi])) / denominator)
    return total / len(xs)


@pytest.mark.parametrize('seed, M, P, D, scale', [
    (0, 10, 4, 6, 1.), (1, 25, 7, 8, 1.), (2, 6, 2, 4, 3.), (3, 9, 5, 5, .5)])
def test_matches_loop_reference(seed, M, P, D, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, D, generator=g)
    p = torch.randn(P, D, generator=g)
    y = torch.randint(0, P, (M, ), generator=g)
    expected = loop_reference(x, y, p, scale)
    got64 = proxy_nca_loss(x.double(), y, p.double(), scale)
    assert got64.item() == pytest.approx(expected, rel=1e-10)
    assert proxy_nca_loss(x, y, p, scale).item() == pytest.approx(
        expected, rel=1e-5)


def test_module_weight_name_and_registries():
    from mmseg.registry import MODELS
    loss = MODELS.build(dict(type='ProxyNCALoss', loss_weight=0.5,
                             loss_name='loss_prompt'))
    assert isinstance(loss, ProxyNCALoss) and loss.loss_name == 'loss_prompt'
    g = torch.Generator().manual_seed(7)
    x, p = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g)
    y = torch.tensor([0, 1, 2, 2, 0])
    assert loss(x, y, p).item() == pytest.approx(
        0.5 * loop_reference(x, y, p), rel=1e-5)
    mmpretrain = pytest.importorskip('mmpretrain.registry')
    assert mmpretrain.MODELS.get('ProxyNCALoss') is ProxyNCALoss


def test_no_negative_or_no_sample_is_a_connected_zero():
    p = torch.randn(1, 4, requires_grad=True)
    loss = proxy_nca_loss(torch.randn(3, 4), torch.zeros(3, dtype=torch.long),
                          p)
    assert loss.item() == 0.
    loss.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))
    assert proxy_nca_loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
                          torch.randn(3, 4)).item() == 0.


def test_gradcheck_float64():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 1, 2, 0])
    assert torch.autograd.gradcheck(lambda a, b: proxy_nca_loss(a, y, b),
                                    (x, p))


def test_bad_settings():
    with pytest.raises(ValueError, match='loss_weight must be >= 0'):
        ProxyNCALoss(loss_weight=-0.1)
    with pytest.raises(ValueError, match='similarity_scale must be >= 0'):
        ProxyNCALoss(similarity_scale=-2.)
