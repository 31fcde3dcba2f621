"""PromptedVisionTransformer against MMSegmentation's VisionTransformer and
against a hand-written VPT loop over MMSegmentation's own layers."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.models import VisionTransformer
from mmseg.registry import MODELS

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models import PromptedVisionTransformer

TINY = dict(img_size=32, patch_size=8, embed_dims=64, num_layers=3,
            num_heads=4, patch_bias=True)


def make_pair(**kwargs):
    """An initialised mmseg ViT and a 0-prompt prompted ViT with its weights."""
    torch.manual_seed(0)
    cfg = {**TINY, **kwargs}
    ref = VisionTransformer(**cfg)
    ref.init_weights()
    # Non-trivial biases and norms so every parameter matters.
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = MODELS.build(dict(type='PromptedVisionTransformer', **cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()  # mmseg's ViT.train() returns None, so no chaining here
    return ref, ours.eval()


@pytest.mark.parametrize('kwargs', [
    dict(out_indices=(0, 1, 2)),
    dict(out_indices=(1, 2), output_cls_token=True, final_norm=True),
    dict(out_indices=-1, with_cls_token=False, pre_norm=True),
    dict(out_indices=(2, ), out_origin=True, qkv_bias=False),
])
@pytest.mark.parametrize('size', [32, 48, (40, 24)])
def test_zero_prompts_equal_mmseg_vit(kwargs, size):
    ref, ours = make_pair(**kwargs)
    hw = (size, size) if isinstance(size, int) else size
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        e, g = (e, g) if isinstance(e, list) else ([e], [g])
        for et, gt in zip(e, g):
            assert et.shape == gt.shape
            assert (et - gt).abs().max().item() <= 1e-4


def test_state_dict_keys_equal_mmseg_vit():
    ref, _ = make_pair()
    ours = PromptedVisionTransformer(**TINY, num_prompts=4, tune_params='kv')
    ours_keys = set(ours.state_dict())
    prompt_keys = {k for k in ours_keys if k.startswith('prompts.')}
    assert prompt_keys == {'prompts.0', 'prompts.1', 'prompts.2'}
    assert ours_keys - prompt_keys == set(ref.state_dict())


def reference_vpt(ref, prompts, x, deep=True):
    """VPT written out over MMSegmentation's layers: ``[cls, P_l, patches]``
    into layer ``l``; returns patch tokens after each layer and each layer's
    input."""
    B = x.shape[0]
    tokens, hw = ref.patch_embed(x)
    tokens = torch.cat([ref.cls_token.expand(B, -1, -1), tokens], 1)
    tokens = ref._pos_embeding(tokens, hw, ref.pos_embed)
    cls, patches = tokens[:, :1], tokens[:, 1:]
    outs, inputs = [], []
    carried = None
    for i, layer in enumerate(ref.layers):
        if deep or i == 0:
            p = prompts[i].expand(B, -1, -1)
        else:
            p = carried
        seq = torch.cat([cls, p, patches], 1)
        inputs.append(seq)
        seq = layer(seq)
        n = p.shape[1]
        cls, carried, patches = seq[:, :1], seq[:, 1:1 + n], seq[:, 1 + n:]
        outs.append(patches.transpose(1, 2).reshape(B, -1, *hw))
    return outs, inputs


@pytest.mark.parametrize('depth', ['deep', 'shallow'])
def test_prompted_forward_matches_written_out_vpt(depth):
    ref, _ = make_pair(out_indices=(0, 1, 2))
    guided = (2, ) if depth == 'deep' else ()
    ours = PromptedVisionTransformer(
        **TINY, out_indices=(0, 1, 2), num_prompts=5, prompt_depth=depth,
        guided_layers=guided, num_guided_prompts=3).eval()
    ours.load_state_dict(ref.state_dict(), strict=False)
    expected_counts = [5, 5, 3] if depth == 'deep' else [5, 0, 0]
    assert ours.prompt_counts == expected_counts
    prompts = {int(k): v for k, v in ours.prompts.items()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, _ = reference_vpt(ref, prompts, x, deep=depth == 'deep')
        got = ours(x)
        plain = ref(x)
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() <= 1e-5
    # Prompts are not a no-op.
    assert (got[-1] - plain[-1]).abs().max().item() > 1e-3


def test_taps_are_attention_context_and_query():
    ref, _ = make_pair(out_indices=(2, ))
    ours = PromptedVisionTransformer(
        **TINY, out_indices=(2, ), num_prompts=4, guided_layers=(-1, ),
        num_guided_prompts=2).eval()
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs, taps = ours.forward_with_taps(x)
        _, inputs = reference_vpt(
            ref, {int(k): v for k, v in ours.prompts.items()}, x)
    assert set(taps) == {2}
    tap = taps[2]
    assert (tap.num_prefix, tap.num_prompt_tokens) == (1, 2)
    assert tap.grid == (4, 4) and tap.patch_size == 8
    assert torch.equal(tap.prompts, ours.prompts['2'])
    # Independent attention: softmax(q k^T / sqrt(d)) v per head, from the
    # checkpoint-layout weights of mmseg's layer.
    layer = ref.layers[2]
    h = layer.ln1(inputs[2])
    w = layer.attn.attn.in_proj_weight
    b = layer.attn.attn.in_proj_bias
    q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
    B, T, D = q.shape
    heads = 4

    def split(t):
        return t.view(B, T, heads, D // heads).transpose(1, 2)

    attn = (split(q) @ split(k).transpose(-1, -2) / (D // heads)**0.5)
    context = (attn.softmax(-1) @ split(v)).transpose(1, 2).reshape(B, T, D)
    assert tap.context.shape == (2, 1 + 2 + 16, 64)
    assert (tap.context - context).abs().max().item() <= 1e-5
    assert (tap.block_input - inputs[2]).abs().max().item() <= 1e-5
    assert (tap.query - q).abs().max().item() <= 1e-5
    # the tap's query projection is W_q without bias (the paper's W_q x)
    assert (h @ tap.query_weight.T + b[:D] - q).abs().max().item() <= 1e-5
    attn_mod = ours.layers[2].attn.attn
    assert torch.allclose(attn_mod.project_query(h), q, atol=1e-6)
    # Taps do not change the outputs; untapped forward keeps none.
    assert torch.equal(outs[0], ours(x)[0])
    assert ours.forward_with_taps(x, tap_layers=())[1] == {}


def test_gradient_checkpointing_gives_same_grads():
    torch.manual_seed(0)
    kw = dict(**TINY, num_prompts=3, guided_layers=(-1, ), tune_params='kv')
    plain = PromptedVisionTransformer(**kw)
    plain.init_weights()
    ckpt = PromptedVisionTransformer(**kw, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for model in (plain, ckpt):
        outs, taps = model.forward_with_taps(x)
        loss = outs[0].square().mean() + taps[2].context.mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6)


@pytest.mark.parametrize('bad, match', [
    (dict(guided_layers=(3, )), 'outside the 3 layers'),
    (dict(guided_layers=(-1, ), num_guided_prompts=0), 'at least one guided'),
    (dict(tune_params=('k_bias', 'kk')), "Unknown parameter group 'kk'"),
    (dict(prompt_depth='middle'), 'prompt_depth'),
    (dict(out_indices=(5, )), 'out_indices contains 5'),
    (dict(num_prompts=-1), 'num_prompts must be >= 0'),
])
def test_bad_arguments_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        PromptedVisionTransformer(**{**TINY, 'num_prompts': 2, **bad})


def test_attention_weights_on_request_only_for_chosen_layers():
    ref, _ = make_pair(out_indices=(2, ))
    ours = PromptedVisionTransformer(**TINY, out_indices=(2, ), num_prompts=4,
                                     guided_layers=(-1, )).eval()
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused_outs, fused = ours.forward_with_taps(x)
        outs, taps = ours.forward_with_taps(x, tap_layers=(2, ),
                                            weight_layers=(1, ))
    assert set(taps) == {1, 2}
    assert taps[2].weights is None and fused[2].weights is None
    w = taps[1].weights
    assert w.shape == (2, 4, 1 + 4 + 16, 1 + 4 + 16)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 21), atol=1e-6)
    # the unfused layer gives the same numbers as the fused path
    assert (outs[0] - fused_outs[0]).abs().max().item() <= 1e-5


def test_scalar_guided_layers_and_out_indices():
    # README writes guided_layers=-1: a bare int is accepted
    # "TypeError: 'int' object is not iterable"
    model = PromptedVisionTransformer(**TINY, num_prompts=4, guided_layers=-1,
                                      num_guided_prompts=2, out_indices=1)
    assert model.guided_layers == (2, ) and model.out_indices == (1, )
    assert model.prompt_counts == [4, 4, 2]


def masked_attention(layer, block_input, num_prefix, num_prompts, heads=4):
    """Attention of mmseg-layout ``layer`` written out, prompt queries kept
    off [CLS] and prompts: ``(context (B, T, D), probabilities)``."""
    h = layer.ln1(block_input)
    w = layer.attn.attn.in_proj_weight
    b = layer.attn.attn.in_proj_bias
    q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
    B, T, D = q.shape

    def split(t):
        return t.view(B, T, heads, D // heads).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / (D // heads)**0.5
    end = num_prefix + num_prompts
    scores[:, :, num_prefix:end, :end] = float('-inf')
    probs = scores.softmax(-1)
    return (probs @ split(v)).transpose(1, 2).reshape(B, T, D), probs


def test_prompt_attention_mask_against_explicit_attention(monkeypatch):
    ref, _ = make_pair(out_indices=(0, 1, 2))
    kw = dict(**TINY, out_indices=(0, 1, 2), num_prompts=0,
              guided_layers=(2, ), num_guided_prompts=3)
    plain = PromptedVisionTransformer(**kw).eval()
    masked = PromptedVisionTransformer(**kw, prompt_attn_mask=True).eval()
    plain.load_state_dict(ref.state_dict(), strict=False)
    masked.load_state_dict(plain.state_dict())
    masks = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs_plain, taps_plain = plain.forward_with_taps(x)
        outs, taps = masked.forward_with_taps(x)
        _, weighted = masked.forward_with_taps(x, weight_layers=(2, ))
    # layers 0 and 1 hold no prompts: fused kernel without a mask, same
    # outputs bit for bit
    assert masks[3] is None and masks[4] is None and masks[5] is not None
    assert torch.equal(outs[0], outs_plain[0])
    assert torch.equal(outs[1], outs_plain[1])
    # layer 2: the masked SDPA and the unfused path equal the explicit one
    tap = taps[2]
    context, probs = masked_attention(ref.layers[2], tap.block_input, 1, 3)
    assert (tap.context - context).abs().max().item() <= 1e-5
    assert (weighted[2].weights - probs).abs().max().item() <= 1e-6
    assert (weighted[2].context - context).abs().max().item() <= 1e-5
    # the mask changes prompt queries only
    assert (tap.context[:, 1:4] - taps_plain[2].context[:, 1:4]).abs().max() \
        > 1e-3
    torch.testing.assert_close(tap.context[:, [0, *range(4, 20)]],
                               taps_plain[2].context[:, [0, *range(4, 20)]])


def test_prompt_attention_mask_in_every_prompted_layer(monkeypatch):
    model = PromptedVisionTransformer(**TINY, num_prompts=2,
                                      prompt_attn_mask=True).eval()
    masks = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert len(masks) == 3 and all(m is not None for m in masks)


def last_tokens(ref, prompts, x, with_cls_token):
    """Tokens after the last layer and mmseg's final norm, VPT-Deep written
    out over MMSegmentation's layers (``[cls?, P_l, patches]``)."""
    B = x.shape[0]
    t, hw = ref.patch_embed(x)
    t = torch.cat([ref.cls_token.expand(B, -1, -1), t], 1)
    t = ref._pos_embeding(t, hw, ref.pos_embed)
    prefix = t[:, :1] if with_cls_token else t[:, :0]
    patches = t[:, 1:]
    for i, layer in enumerate(ref.layers):
        t = layer(torch.cat([prefix, prompts[str(i)].expand(B, -1, -1), patches],
                            1))
        prefix, patches = t[:, :prefix.shape[1]], t[:, -patches.shape[1]:]
    return ref.norm1(t)


@pytest.mark.parametrize('with_cls_token', [True, False])
def test_mean_tokens_output_is_mean_after_final_norm(with_cls_token):
    ref, _ = make_pair(out_indices=(2, ), final_norm=True)
    ours = PromptedVisionTransformer(
        **TINY, out_indices=(2, ), final_norm=True, num_prompts=4,
        out_type='mean_tokens', with_cls_token=with_cls_token).eval()
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = ours(x)[0]
        tokens = last_tokens(ref, ours.prompts, x, with_cls_token)
    # released code's MAE feature: mean of every token after [CLS], the
    # last layer's prompts included, after the final norm
    expected = tokens[:, int(with_cls_token):].mean(1)
    assert got.shape == (2, 64)
    assert (got - expected).abs().max().item() <= 1e-5
