"""MetricGuidance (the shared base): the guided-layer loop against explicit
computations on hand-made taps, the compared vectors (``feature``,
``token_source``, ``cls_source``, each alone and as the released code sets
them) and loss configs."""
import pytest
import torch

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models.backbones.layer_taps import LayerTaps
from mmseg_davpt.models.guidance import NO_PROMPT, ClsMetricGuidance
from tests.test_models.test_losses.test_proxy_anchor_loss import \
    loop_reference

D, N, GRID = 8, 3, (2, 2)


def make_taps(layers, B=4, seed=0, query=True):
    """Random taps of a ViT with [CLS], ``N`` prompts and a 2x2 grid."""
    g = torch.Generator().manual_seed(seed)
    T = 1 + N + GRID[0] * GRID[1]
    taps = {}
    for layer in layers:
        w_q = torch.randn(D, D, generator=g)
        tap = LayerTaps(
            context=torch.randn(B, T, D, generator=g),
            block_input=torch.randn(B, T, D, generator=g),
            prompts=torch.randn(N, D, generator=g),
            query_weight=w_q,
            num_prefix=1, num_prompt_tokens=N, grid=GRID, patch_size=8)
        if query:
            tap.query = torch.randn(B, T, D, generator=g)
        taps[layer] = tap
    return taps


def guidance(layers=(1, ), mapping=(2, 0, NO_PROMPT), **kwargs):
    g = ClsMetricGuidance(num_classes=len(mapping), embed_dims=D,
                          guided_layers=layers, num_guided_prompts=N,
                          **kwargs)
    g.mapping.class_to_prompt.copy_(torch.tensor(mapping))
    g.mapping.num_refreshes.fill_(1)
    return g


def anchor(weight=1., **kwargs):
    return dict(type='ProxyAnchorLoss', loss_weight=weight, **kwargs)


LABELS = torch.tensor([0, 1, 2, 1])  # class 2 has no prompt: image 2 unused
USE = torch.tensor([True, True, False, True])
ROWS = torch.tensor([1, 0, 0])  # prompts 2, 0, 0 -> rows of proxies [0, 2]


def test_query_feature_layer_mean_against_explicit_computation():
    g = guidance(layers=(1, 2), loss_prompt=anchor(0.5), loss_cls=anchor(2.))
    taps = make_taps((1, 2))
    out = g.loss(taps, LABELS)
    exp_p = exp_cls = 0.
    for tap in taps.values():
        w = tap.query_weight
        proxies = tap.prompts[[0, 2]] @ w.T
        patches = tap.context[USE, 1 + N:] @ w.T  # (3, 4, D), all tokens
        exp_p += loop_reference(patches.flatten(0, 1),
                                ROWS.repeat_interleave(4), proxies, 0.1, 32.)
        exp_cls += loop_reference(tap.context[USE, 0] @ w.T, ROWS, proxies,
                                  0.1, 32.)
    assert out['loss_prompt'].item() == pytest.approx(0.5 * exp_p / 2,
                                                      rel=1e-4)
    assert out['loss_cls'].item() == pytest.approx(2. * exp_cls / 2,
                                                   rel=1e-4)
    assert out['img_frac'].item() == 0.75
    assert out['unassigned_prompts'].item() == 1.


RELEASED = dict(feature='raw', token_source='block_input',
                cls_source='attention_query')


def test_released_settings_against_explicit_computation():
    # L_p: per-image mean of the block-input patch tokens vs the raw prompts;
    # L_cls: the attention's [CLS] query (W_q LN(x) + b_q) vs the raw
    # prompts; both with the released recipes' similarity scale 5
    g = guidance(**RELEASED, pooling='image_mean',
                 loss_prompt=anchor(similarity_scale=5.),
                 loss_cls=anchor(similarity_scale=5.))
    taps = make_taps((1, ))
    tap = taps[1]
    out = g.loss(taps, LABELS)
    proxies = tap.prompts[[0, 2]]
    exp_p = loop_reference(tap.block_input[USE, 1 + N:].mean(1), ROWS,
                           proxies, 0.1, 32., scale=5.)
    exp_cls = loop_reference(tap.query[USE, 0], ROWS, proxies, 0.1, 32.,
                             scale=5.)
    assert out['loss_prompt'].item() == pytest.approx(exp_p, rel=1e-4)
    assert out['loss_cls'].item() == pytest.approx(exp_cls, rel=1e-4)


def test_attention_query_cls_source_needs_the_query_tap():
    g = guidance(cls_source='attention_query')
    with pytest.raises(RuntimeError, match='carry no `query`'):
        g.loss(make_taps((1, ), query=False), LABELS)


@pytest.mark.parametrize('settings, changed', [
    # L_p samples: block-input patch tokens, through W_q like the proxies
    (dict(token_source='block_input'), 'loss_prompt'),
    # L_cls sample: the [CLS] query as computed, not projected again
    (dict(cls_source='attention_query'), 'loss_cls'),
])
def test_each_vector_option_alone(settings, changed):
    g = guidance(**settings, loss_prompt=anchor(), loss_cls=anchor())
    taps = make_taps((1, ))
    tap = taps[1]
    w = tap.query_weight
    out = g.loss(taps, LABELS)
    tokens = tap.block_input if 'token_source' in settings else tap.context
    cls = tap.query[USE, 0] if 'cls_source' in settings else \
        tap.context[USE, 0] @ w.T
    proxies = tap.prompts[[0, 2]] @ w.T
    exp_p = loop_reference((tokens[USE, 1 + N:] @ w.T).flatten(0, 1),
                           ROWS.repeat_interleave(4), proxies, 0.1, 32.)
    exp_cls = loop_reference(cls, ROWS, proxies, 0.1, 32.)
    assert out['loss_prompt'].item() == pytest.approx(exp_p, rel=1e-4)
    assert out['loss_cls'].item() == pytest.approx(exp_cls, rel=1e-4)
    # the option changes its own term only
    default = guidance(loss_prompt=anchor(), loss_cls=anchor()).loss(
        taps, LABELS)
    for name in ('loss_prompt', 'loss_cls'):
        same = out[name].item() == pytest.approx(default[name].item(),
                                                 rel=1e-5)
        assert same == (name != changed), name


@pytest.mark.parametrize('key, value', [('feature', 'released'),
                                        ('token_source', 'context'),
                                        ('cls_source', 'query')])
def test_unknown_vector_choices_are_rejected(key, value):
    with pytest.raises(ValueError, match=f'{key} must be one of'):
        guidance(**{key: value})


def test_mapping_refresh_embeds_class_means_as_the_loss_does():
    # the same ``embed`` decides the space of the k-means inputs
    w = torch.randn(D, D, generator=torch.Generator().manual_seed(3))
    feats = torch.randn(6, D, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    means = torch.stack([feats[labels == c].mean(0) for c in range(3)])
    for feature, expected in (('query', means @ w.T), ('raw', means)):
        g = guidance(feature=feature)
        g.mapping.accumulate(feats, labels)
        calls = []
        g.mapping.assign = lambda s, m: calls.append((s, m)) or {}
        g.refresh_mapping(w)
        assert torch.equal(calls[0][0], torch.arange(3))
        assert torch.allclose(calls[0][1], expected, atol=1e-5)


def test_raw_feature_compares_unprojected_vectors():
    g = guidance(feature='raw', loss_cls=None)
    taps = make_taps((1, ))
    tap = taps[1]
    out = g.loss(taps, LABELS)
    assert 'loss_cls' not in out  # term left out
    exp = loop_reference(tap.context[USE, 1 + N:].flatten(0, 1),
                         ROWS.repeat_interleave(4), tap.prompts[[0, 2]], 0.1,
                         32.)
    assert out['loss_prompt'].item() == pytest.approx(0.05 * exp, rel=1e-4)


@pytest.mark.parametrize('loss_type', ['ProxyNCALoss', 'ProxyTripletLoss'])
def test_table7_alternatives_get_the_samples_proxies_and_names(loss_type):
    # the alternative losses (each checked against its own reference in its
    # test file) applied to the samples written out here
    from mmseg.registry import MODELS
    g = guidance(loss_prompt=dict(type=loss_type, loss_name='loss_p_alt',
                                  loss_weight=0.5),
                 loss_cls=dict(type=loss_type, loss_weight=2.))
    taps = make_taps((1, ))
    out = g.loss(taps, LABELS)
    assert 'loss_prompt' not in out
    tap = taps[1]
    w = tap.query_weight
    proxies = tap.prompts[[0, 2]] @ w.T
    reference = MODELS.build(dict(type=loss_type, loss_weight=1.))
    exp_p = reference(
        (tap.context[USE, 1 + N:] @ w.T).flatten(0, 1),
        ROWS.repeat_interleave(4), proxies)
    exp_cls = reference(tap.context[USE, 0] @ w.T, ROWS, proxies)
    assert out['loss_p_alt'].item() == pytest.approx(0.5 * exp_p.item(),
                                                     rel=1e-4)
    assert out['loss_cls'].item() == pytest.approx(2. * exp_cls.item(),
                                                   rel=1e-4)


def test_bad_loss_settings_fail_at_build_time_naming_key_and_value():
    with pytest.raises(ValueError, match='loss_weight must be >= 0, got '
                       'loss_weight=-1'):
        guidance(loss_prompt=anchor(-1.))
    with pytest.raises(ValueError, match='need different loss_name'):
        guidance(loss_prompt=anchor(loss_name='loss_x'),
                 loss_cls=anchor(loss_name='loss_x'))
    with pytest.raises(ValueError, match='must be a loss config'):
        guidance(loss_prompt=0.05)
    with pytest.raises(TypeError, match='temperature'):
        guidance(temperature=2.)


def test_autocast_leaves_the_compared_space_in_float32():
    # bf16 projections or similarities would move the loss by ~1e-2
    g = guidance(loss_prompt=anchor(), loss_cls=anchor())
    taps = make_taps((1, ))
    plain = g.loss(taps, LABELS)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = g.loss(taps, LABELS)
    for name in ('loss_prompt', 'loss_cls'):
        assert mixed[name].dtype == torch.float32
        assert mixed[name].item() == pytest.approx(plain[name].item(),
                                                   rel=1e-6)
