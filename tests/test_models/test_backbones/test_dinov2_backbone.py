"""DINOv2 options of ``PromptedVisionTransformer``: patch 14, LayerScale and
register tokens, against mmpretrain's ``VisionTransformer`` (its DINOv2
settings) and an explicit reference computation for the registers."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_davpt.models.backbones.prompted_vit import PromptedVisionTransformer
from mmseg_davpt.models.backbones.vit_checkpoint import mmpretrain_to_mmseg

mmpretrain_vit = pytest.importorskip(
    'mmpretrain.models.backbones.vision_transformer')

DIMS, HEADS, LAYERS, PATCH, TRAIN_PX = 64, 4, 3, 14, 56  # 4x4 grid


def _mmpretrain_dinov2(out_type='featmap'):
    """mmpretrain's ViT with the settings of its dinov2 configs (LayerScale,
    patch 14, final norm, LN eps 1e-6, no pre-norm) at tiny size."""
    torch.manual_seed(0)
    ref = mmpretrain_vit.VisionTransformer(
        arch=dict(embed_dims=DIMS, num_layers=LAYERS, num_heads=HEADS,
                  feedforward_channels=4 * DIMS),
        img_size=TRAIN_PX, patch_size=PATCH, layer_scale_init_value=1e-5,
        out_type=out_type, final_norm=True, out_indices=(1, 2),
        norm_cfg=dict(type='LN', eps=1e-6))
    ref.init_weights()
    # trained LayerScale values are far from 1e-5: make them matter
    for name, p in ref.named_parameters():
        if 'gamma' in name:
            p.data.uniform_(0.5, 1.5)
    ref.eval()
    return ref


def _ours(**kwargs):
    cfg = dict(img_size=TRAIN_PX, patch_size=PATCH, embed_dims=DIMS,
               num_layers=LAYERS, num_heads=HEADS, out_indices=(1, 2),
               norm_cfg=dict(type='LN', eps=1e-6), patch_bias=True,
               final_norm=True, layer_scale_init_value=1e-5)
    cfg.update(kwargs)
    return PromptedVisionTransformer(**cfg).eval()


def test_layer_scale_parameter_names():
    model = _ours()
    names = dict(model.named_parameters())
    assert names['layers.0.attn.gamma1.weight'].shape == (DIMS, )
    assert names['layers.0.ffn.gamma2.weight'].shape == (DIMS, )
    assert torch.allclose(names['layers.2.ffn.gamma2.weight'],
                          torch.full((DIMS, ), 1e-5))
    # off by default: no parameter, mmseg's ViT keys unchanged
    plain = _ours(layer_scale_init_value=0.)
    assert not any('gamma' in n for n, _ in plain.named_parameters())
    assert not hasattr(plain, 'register_tokens')


@pytest.mark.parametrize('px', [TRAIN_PX, 84])
def test_matches_mmpretrain_dinov2(px):
    ref = _mmpretrain_dinov2()
    model = _ours()
    missing, unexpected = model.load_state_dict(
        mmpretrain_to_mmseg(ref.state_dict()), strict=False)
    assert not unexpected
    assert all(k.startswith('prompts.') for k in missing), missing
    x = torch.randn(2, 3, px, px)
    with torch.no_grad():
        want, got = ref(x), model(x)
    assert len(want) == len(got) == 2
    for w, g in zip(want, got):
        assert g.shape == w.shape == (2, DIMS, px // PATCH, px // PATCH)
        assert (g - w).abs().max() <= 1e-4


def test_patch14_grid_518_and_512():
    """DINOv2's 37x37 pretraining grid (518 px): a 512 px input is padded
    (``patch_pad='corner'``) to the same 37x37 grid, so ``pos_embed`` is used
    as is; a 448 px input (32x32) interpolates it."""
    model = _ours(img_size=518, num_layers=1, out_indices=0, final_norm=False)
    assert model.patch_grid == (37, 37)
    assert model.pos_embed.shape == (1, 1 + 37 * 37, DIMS)
    with torch.no_grad():
        out512, = model(torch.randn(1, 3, 512, 512))
        out448, = model(torch.randn(1, 3, 448, 448))
    assert out512.shape == (1, DIMS, 37, 37)
    assert out448.shape == (1, DIMS, 32, 32)


def _reference_with_registers(model, x):
    """DINOv2 with registers written out: pos-embed on [cls, patches],
    registers inserted after [cls], prompts after the registers, pre-LN
    blocks with LayerScale; returns the final-normed sequence."""
    B = x.shape[0]
    p = model.patch_embed.projection
    t = F.conv2d(x, p.weight, p.bias, stride=PATCH).flatten(2).transpose(1, 2)
    t = torch.cat([model.cls_token.expand(B, -1, -1), t], 1) + model.pos_embed
    t = torch.cat([t[:, :1], model.register_tokens.expand(B, -1, -1),
                   t[:, 1:]], 1)
    R = model.num_register_tokens
    n_prev = 0
    for i, layer in enumerate(model.layers):
        prompts = model.layer_prompts(i).expand(B, -1, -1)
        if prompts.shape[1]:
            t = torch.cat([t[:, :1 + R], prompts, t[:, 1 + R + n_prev:]], 1)
            n_prev = prompts.shape[1]
        a = layer.attn.attn
        h = F.layer_norm(t, (DIMS, ), layer.ln1.weight, layer.ln1.bias, 1e-6)
        q, k, v = F.linear(h, a.in_proj_weight, a.packed_bias()).chunk(3, -1)
        split = lambda z: z.view(B, -1, HEADS, DIMS // HEADS).transpose(1, 2)
        att = (split(q) @ split(k).transpose(-1, -2) *
               (DIMS // HEADS)**-0.5).softmax(-1) @ split(v)
        att = a.out_proj(att.transpose(1, 2).reshape(B, -1, DIMS))
        t = t + layer.attn.gamma1.weight * att
        h = F.layer_norm(t, (DIMS, ), layer.ln2.weight, layer.ln2.bias, 1e-6)
        fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
        t = t + layer.ffn.gamma2.weight * fc2(F.gelu(fc1(h)))
    return F.layer_norm(t, (DIMS, ), model.ln1.weight, model.ln1.bias, 1e-6)


@pytest.mark.parametrize('num_prompts,depth', [(0, 'deep'), (3, 'deep'),
                                               (3, 'shallow')])
def test_registers_match_reference(num_prompts, depth):
    torch.manual_seed(1)
    model = _ours(num_register_tokens=2, num_prompts=num_prompts,
                  prompt_depth=depth, out_indices=LAYERS - 1,
                  output_cls_token=True)
    model.init_weights()
    with torch.no_grad():
        model.register_tokens.normal_()
        for name, p in model.named_parameters():
            if 'gamma' in name:
                p.uniform_(0.5, 1.5)
    assert model.num_prefix == 3
    x = torch.randn(2, 3, TRAIN_PX, TRAIN_PX)
    with torch.no_grad():
        (featmap, cls), = model(x)
        want = _reference_with_registers(model, x)
    first = 3 + num_prompts
    assert featmap.shape == (2, DIMS, 4, 4)
    assert torch.allclose(featmap.flatten(2).transpose(1, 2),
                          want[:, first:], atol=1e-4)
    assert torch.allclose(cls, want[:, 0], atol=1e-4)
    # the guidance's view: [CLS] at 0, patches after registers and prompts
    with torch.no_grad():
        _, taps = model.forward_with_taps(x, tap_layers=LAYERS - 1)
    tap = taps[LAYERS - 1]
    assert tap.num_prefix == 3 and tap.num_prompt_tokens == num_prompts
    assert tap.patch_tokens().shape == (2, 16, DIMS)
    assert torch.equal(tap.cls_token(), tap.context[:, 0])


def test_registers_need_cls_token():
    with pytest.raises(ValueError, match='num_register_tokens'):
        _ours(num_register_tokens=2, with_cls_token=False)
    with pytest.raises(ValueError, match='num_register_tokens'):
        _ours(num_register_tokens=-1)
    with pytest.raises(ValueError, match='layer_scale_init_value'):
        _ours(layer_scale_init_value=-1.)


def test_registers_frozen_and_saved():
    model = _ours(num_register_tokens=2, num_prompts=2)
    assert model.state_dict()['register_tokens'].shape == (1, 2, DIMS)
    assert not model.register_tokens.requires_grad
    assert not model.layers[0].attn.gamma1.weight.requires_grad


@pytest.mark.parametrize('px', [224, 126])
def test_matches_mmpretrain_named_dinov2_small(px):
    """At full size with mmpretrain's own ``arch='dinov2-small'`` (384 dims,
    12 layers, 6 heads; the installed mmpretrain names no DINOv2 base or
    large arch, those are built from arch dicts above), at the training size
    and another one."""
    torch.manual_seed(0)
    ref = mmpretrain_vit.VisionTransformer(
        arch='dinov2-small', img_size=224, patch_size=PATCH,
        out_type='featmap',
        layer_scale_init_value=1e-5, final_norm=True, out_indices=(5, 11),
        norm_cfg=dict(type='LN', eps=1e-6))
    ref.init_weights()
    for name, p in ref.named_parameters():
        if 'gamma' in name:
            p.data.uniform_(0.5, 1.5)
    ref.eval()
    model = PromptedVisionTransformer(
        img_size=224, patch_size=PATCH, embed_dims=384, num_layers=12,
        num_heads=6, out_indices=(5, 11), norm_cfg=dict(type='LN', eps=1e-6),
        patch_bias=True, final_norm=True, layer_scale_init_value=1e-5).eval()
    missing, unexpected = model.load_state_dict(
        mmpretrain_to_mmseg(ref.state_dict()), strict=False)
    assert not unexpected and not missing
    x = torch.randn(1, 3, px, px)
    with torch.no_grad():
        for w, g in zip(ref(x), model(x)):
            assert g.shape == w.shape == (1, 384, px // PATCH, px // PATCH)
            assert (g - w).abs().max() <= 1e-4
