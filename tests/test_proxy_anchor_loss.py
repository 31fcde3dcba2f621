"""proxy_anchor_loss against a direct float64 loop over the definition."""
import math

import pytest
import torch

from mmseg_davpt.models import proxy_anchor_loss


def loop_reference(x, y, p, margin, alpha):
    """Proxy-Anchor written out element by element in Python floats."""
    x = x.double().tolist()
    p = p.double().tolist()
    y = y.tolist()

    def cos(a, b):
        dot = sum(i * j for i, j in zip(a, b))
        return dot / (math.sqrt(sum(i * i for i in a)) *
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
