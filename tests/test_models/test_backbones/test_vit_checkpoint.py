"""Loading timm / .npz / mmpretrain ViT weights into the prompted backbone,
checked against a functional timm-style ViT written out here."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models import PromptedVisionTransformer
from mmseg_davpt.models.backbones.vit_checkpoint import (extract_vit_state_dict,
                                                         timm_to_mmseg)
from tools.convert_vit_checkpoint import main as convert

D, HEADS, LAYERS, PATCH, IMG = 64, 4, 2, 8, 32


def timm_vit_state(seed=0, dim=D, grid=IMG // PATCH):
    """A random ViT state dict in timm key layout (with a 10-class head)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return 0.1 * torch.randn(*shape, generator=g)

    sd = {
        'cls_token': r(1, 1, dim),
        'pos_embed': r(1, 1 + grid * grid, dim),
        'patch_embed.proj.weight': r(dim, 3, PATCH, PATCH),
        'patch_embed.proj.bias': r(dim),
        'norm.weight': 1 + r(dim),
        'norm.bias': r(dim),
        'head.weight': r(10, dim),
        'head.bias': r(10),
    }
    for i in range(LAYERS):
        p = f'blocks.{i}.'
        sd.update({
            p + 'norm1.weight': 1 + r(dim), p + 'norm1.bias': r(dim),
            p + 'attn.qkv.weight': r(3 * dim, dim),
            p + 'attn.qkv.bias': r(3 * dim),
            p + 'attn.proj.weight': r(dim, dim), p + 'attn.proj.bias': r(dim),
            p + 'norm2.weight': 1 + r(dim), p + 'norm2.bias': r(dim),
            p + 'mlp.fc1.weight': r(4 * dim, dim),
            p + 'mlp.fc1.bias': r(4 * dim),
            p + 'mlp.fc2.weight': r(dim, 4 * dim), p + 'mlp.fc2.bias': r(dim),
        })
    return sd


def timm_forward(sd, x):
    """Pre-norm ViT forward straight from timm-layout tensors."""
    x = F.conv2d(x, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'],
                 stride=PATCH)
    B = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd['cls_token'].expand(B, -1, -1), x], 1) + sd['pos_embed']
    T, hd = x.shape[1], D // HEADS
    for i in range(LAYERS):
        p = f'blocks.{i}.'
        y = F.layer_norm(x, (D, ), sd[p + 'norm1.weight'],
                         sd[p + 'norm1.bias'], eps=1e-6)
        q, k, v = F.linear(y, sd[p + 'attn.qkv.weight'],
                           sd[p + 'attn.qkv.bias']).view(
                               B, T, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-1, -2)) * hd**-0.5).softmax(-1) @ v
        a = a.transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(a, sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'])
        y = F.layer_norm(x, (D, ), sd[p + 'norm2.weight'],
                         sd[p + 'norm2.bias'], eps=1e-6)
        y = F.linear(F.gelu(F.linear(y, sd[p + 'mlp.fc1.weight'],
                                     sd[p + 'mlp.fc1.bias'])),
                     sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'])
        x = x + y
    return F.layer_norm(x, (D, ), sd['norm.weight'], sd['norm.bias'], eps=1e-6)


def timm_to_npz(sd):
    """Write timm tensors the way the ViT authors' .npz stores them."""
    out = {
        'embedding/kernel': sd['patch_embed.proj.weight'].permute(2, 3, 1, 0),
        'embedding/bias': sd['patch_embed.proj.bias'],
        'cls': sd['cls_token'],
        'Transformer/posembed_input/pos_embedding': sd['pos_embed'],
        'Transformer/encoder_norm/scale': sd['norm.weight'],
        'Transformer/encoder_norm/bias': sd['norm.bias'],
        'head/kernel': sd['head.weight'].T, 'head/bias': sd['head.bias'],
    }
    hd = D // HEADS
    for i in range(LAYERS):
        s, p = f'Transformer/encoderblock_{i}/', f'blocks.{i}.'
        att = s + 'MultiHeadDotProductAttention_1/'
        for j, n in enumerate(('query', 'key', 'value')):
            w = sd[p + 'attn.qkv.weight'][j * D:(j + 1) * D]  # (out, in)
            out[att + f'{n}/kernel'] = w.T.reshape(D, HEADS, hd)
            out[att + f'{n}/bias'] = sd[p + 'attn.qkv.bias'][
                j * D:(j + 1) * D].reshape(HEADS, hd)
        out[att + 'out/kernel'] = sd[p + 'attn.proj.weight'].T.reshape(
            HEADS, hd, D)
        out[att + 'out/bias'] = sd[p + 'attn.proj.bias']
        out[s + 'LayerNorm_0/scale'] = sd[p + 'norm1.weight']
        out[s + 'LayerNorm_0/bias'] = sd[p + 'norm1.bias']
        out[s + 'LayerNorm_2/scale'] = sd[p + 'norm2.weight']
        out[s + 'LayerNorm_2/bias'] = sd[p + 'norm2.bias']
        out[s + 'MlpBlock_3/Dense_0/kernel'] = sd[p + 'mlp.fc1.weight'].T
        out[s + 'MlpBlock_3/Dense_0/bias'] = sd[p + 'mlp.fc1.bias']
        out[s + 'MlpBlock_3/Dense_1/kernel'] = sd[p + 'mlp.fc2.weight'].T
        out[s + 'MlpBlock_3/Dense_1/bias'] = sd[p + 'mlp.fc2.bias']
    return {k: v.numpy() for k, v in out.items()}


def build(checkpoint, img_size=IMG, **kwargs):
    cfg = dict(img_size=img_size, patch_size=PATCH, embed_dims=D,
               num_layers=LAYERS, num_heads=HEADS, patch_bias=True,
               final_norm=True, norm_cfg=dict(type='LN', eps=1e-6),
               out_indices=(LAYERS - 1, ),
               init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    cfg.update(kwargs)
    return PromptedVisionTransformer(**cfg)


@pytest.fixture
def timm_file(tmp_path):
    sd = timm_vit_state()
    path = tmp_path / 'vit_timm.pth'
    torch.save(sd, path)
    return sd, path


def test_converted_timm_checkpoint_loads_and_matches_timm_forward(
        timm_file, tmp_path, capsys):
    sd, path = timm_file
    dst = tmp_path / 'vit_mmseg.pth'
    convert([str(path), str(dst)])
    assert 'timm layout' in capsys.readouterr().out
    model = build(dst, num_prompts=3)
    report = model.load_pretrained(str(dst))
    assert report['missing'] == [] and report['unexpected'] == []
    assert report['new'] == ['prompts.0', 'prompts.1']

    zero = build(dst, num_prompts=0)
    zero.init_weights()
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        expected = timm_forward(sd, x)[:, 1:]
        got = zero.eval()(x)[0].flatten(2).transpose(1, 2)
    assert (expected - got).abs().max().item() <= 1e-4


def test_timm_file_loads_directly_with_head_reported_unused(timm_file):
    sd, path = timm_file
    model = build(path, num_prompts=2)
    report = model.load_pretrained(str(path))
    assert report['missing'] == []
    # the classification head is dropped by the conversion, not loaded
    assert not any(k.startswith('head') for k in report['unexpected'])
    assert torch.equal(model.layers[1].ffn.layers[0][0].weight,
                       sd['blocks.1.mlp.fc1.weight'])
    assert torch.equal(model.layers[0].attn.attn.k_bias,
                       sd['blocks.0.attn.qkv.bias'][D:2 * D])


def test_npz_conversion_equals_timm_conversion(timm_file, tmp_path):
    sd, _ = timm_file
    npz = tmp_path / 'ViT-T_8.npz'
    np.savez(npz, **timm_to_npz(sd))
    dst = tmp_path / 'from_npz.pth'
    convert([str(npz), str(dst)])
    got = torch.load(dst)
    expected = timm_to_mmseg(sd)
    assert set(got) == set(expected)
    for k in expected:
        assert torch.allclose(got[k], expected[k], atol=1e-7), k


def test_mmpretrain_layout_with_backbone_prefix(timm_file, tmp_path):
    sd, _ = timm_file
    mmseg_sd = timm_to_mmseg(sd)
    mmpre = {}
    for k, v in mmseg_sd.items():
        k = k.replace('attn.attn.in_proj_', 'attn.qkv.').replace(
            'attn.attn.out_proj.', 'attn.proj.')
        mmpre['backbone.' + k] = v
    mmpre['head.layers.head.weight'] = torch.zeros(5, D)
    path = tmp_path / 'mmpretrain.pth'
    torch.save({'state_dict': mmpre, 'meta': {}}, path)
    state, layout = extract_vit_state_dict(torch.load(path))
    assert layout == 'mmpretrain'
    assert set(state) == set(mmseg_sd)
    report = build(path).load_pretrained(str(path))
    assert report['missing'] == [] and report['unexpected'] == []


def test_pos_embed_is_resized_to_the_training_grid(timm_file):
    sd, path = timm_file
    model = build(path, img_size=48)
    model.init_weights()
    grid = sd['pos_embed'][:, 1:].reshape(1, 4, 4, D).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode='bicubic',
                             align_corners=False).flatten(2).transpose(1, 2)
    assert model.pos_embed.shape == (1, 37, D)
    assert torch.allclose(model.pos_embed[:, 1:], expected, atol=1e-6)
    assert torch.equal(model.pos_embed[:, 0], sd['pos_embed'][:, 0])


def test_wrong_embedding_size_is_a_clear_error(tmp_path):
    path = tmp_path / 'vit_small.pth'
    torch.save(timm_vit_state(dim=32), path)
    with pytest.raises(ValueError, match='embedding size'):
        build(path).init_weights()


def test_missing_pretrained_keys_are_an_error(timm_file, tmp_path):
    sd, _ = timm_file
    del sd['blocks.1.mlp.fc1.weight']
    path = tmp_path / 'partial.pth'
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r'layers\.1\.ffn\.layers\.0\.0\.weight'):
        build(path).init_weights()


def test_patch_bias_mismatch_is_reported(timm_file):
    _, path = timm_file
    report = build(path, patch_bias=False).load_pretrained(str(path))
    assert report['unexpected'] == ['patch_embed.projection.bias']


def test_unrecognised_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(8, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match='Could not find ViT weights'):
        build(path).init_weights()


# ------------------------------------------------ loading at run time
def tiny_classifier(img_size):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='PromptedVisionTransformer', img_size=img_size,
                      patch_size=PATCH, embed_dims=D, num_layers=LAYERS,
                      num_heads=HEADS, patch_bias=True, final_norm=True,
                      out_type='cls_token', num_prompts=2),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=D))


def test_load_from_full_checkpoint_at_another_resolution(tmp_path):
    """A runner's ``load_from`` of a classifier trained at 32 px into one
    built at 48 px: ``pos_embed`` is resized in the backbone's load hook
    instead of a size mismatch that leaves it at init."""
    pytest.importorskip('mmpretrain')
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import load_checkpoint
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        small = MODELS.build(tiny_classifier(32))
        small.init_weights()
        large = MODELS.build(tiny_classifier(48))
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(), state_dict=small.state_dict()), path)
    load_checkpoint(large, str(path), map_location='cpu')
    old = small.backbone.pos_embed.detach()
    grid = old[:, 1:].reshape(1, 4, 4, D).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode='bicubic',
                             align_corners=False).flatten(2).transpose(1, 2)
    got = large.backbone.pos_embed.detach()
    assert got.shape == (1, 37, D)
    assert torch.allclose(got[:, 1:], expected, atol=1e-6)
    assert torch.equal(got[:, :1], old[:, :1])
    for key in ('backbone.prompts.1', 'backbone.layers.1.ln2.weight',
                'head.fc.weight'):
        assert torch.equal(large.state_dict()[key], small.state_dict()[key])


def mmpretrain_no_cls_vit(pre_norm=False):
    from mmpretrain.models.backbones import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(
        arch=dict(embed_dims=D, num_layers=LAYERS, num_heads=HEADS,
                  feedforward_channels=4 * D),
        img_size=IMG, patch_size=PATCH, with_cls_token=False,
        out_type='featmap', final_norm=True, pre_norm=pre_norm)
    vit.init_weights()
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if name.endswith('bias') or 'norm' in name or 'ln' in name:
                p.add_(0.1 * torch.randn_like(p))
    vit.eval()  # mmpretrain's train() returns None
    return vit


@pytest.mark.parametrize('pre_norm', [False, True])
def test_mmpretrain_checkpoint_without_cls_token(tmp_path, pre_norm):
    """mmpretrain ``with_cls_token=False``: no ``cls_token``, ``pos_embed``
    without the [CLS] slot, loads (a zero [CLS] slot is prepended)."""
    pytest.importorskip('mmpretrain')
    vit = mmpretrain_no_cls_vit(pre_norm)
    assert 'cls_token' not in vit.state_dict()
    assert vit.pos_embed.shape == (1, 16, D)
    path = tmp_path / 'no_cls.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in vit.state_dict().items()}), path)
    ours = build(path, with_cls_token=False, pre_norm=pre_norm,
                 patch_bias=not pre_norm, num_prompts=0)
    report = ours.load_pretrained(str(path))
    assert report['filled'] == ['pos_embed[:, 0]', 'cls_token']
    assert report['missing'] == [] and report['unexpected'] == []
    assert torch.equal(ours.pos_embed[:, 1:], vit.pos_embed)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        expected = vit(x)[0]
        got = ours.eval()(x)[0]
    assert (expected - got).abs().max().item() <= 1e-4
    # a backbone that uses [CLS] cannot take it: a clear error
    with pytest.raises(ValueError, match='has no cls_token .* '
                       'with_cls_token=False'):
        build(path, with_cls_token=True, pre_norm=pre_norm,
              patch_bias=not pre_norm).init_weights()


def test_no_cls_checkpoint_resized_and_through_load_state_dict(tmp_path):
    pytest.importorskip('mmpretrain')
    from mmpretrain.models.utils import resize_pos_embed
    vit = mmpretrain_no_cls_vit()
    state, _ = extract_vit_state_dict(vit.state_dict())
    ours = build('unused', img_size=48, with_cls_token=False, init_cfg=None)
    # the state-dict path (e.g. load_from) fits it the same way
    result = ours.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    expected = resize_pos_embed(vit.pos_embed, (4, 4), (6, 6), 'bicubic',
                                num_extra_tokens=0)
    assert torch.allclose(ours.pos_embed[:, 1:], expected, atol=1e-6)
    assert not ours.pos_embed[:, 0].any() and not ours.cls_token.any()


def test_pos_embed_that_is_no_square_grid_is_a_clear_error(tmp_path):
    sd = timm_vit_state()
    sd['pos_embed'] = sd['pos_embed'][:, :-3]  # 14 tokens
    path = tmp_path / 'odd.pth'
    torch.save(sd, path)
    with pytest.raises(ValueError, match='14 tokens: not a square patch '
                       'grid'):
        build(path).init_weights()
