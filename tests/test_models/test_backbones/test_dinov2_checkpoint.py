"""DINOv2 checkpoint layouts (the authors' and mmpretrain's) into the
prompted backbone. The state dicts are generated here with the published
key names and shapes (ViT-L/14: D=1024, 24 blocks, 37x37 grid at 518 px),
at tiny size; no weights are downloaded."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_davpt.models.backbones.vit_checkpoint.dinov2 import (dinov2_to_mmseg,
                                                            is_dinov2_layout)
from mmseg_davpt.models.backbones.prompted_vit import PromptedVisionTransformer
from mmseg_davpt.models.backbones.vit_checkpoint import (detect_layout,
                                                         extract_vit_state_dict)
from tools.convert_vit_checkpoint import main as convert

D, HEADS, DEPTH, PATCH, GRID, R = 64, 4, 2, 14, 4, 2
IMG = PATCH * GRID


def dinov2_state(registers=R, seed=0):
    """A DINOv2-authors state dict (``dinov2_vitl14_reg4_pretrain.pth``
    names) at tiny size, random values, LayerScale far from 1e-5."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.1  # noqa: E731
    sd = {'cls_token': r(1, 1, D), 'pos_embed': r(1, 1 + GRID * GRID, D),
          'mask_token': r(1, D), 'patch_embed.proj.weight': r(D, 3, PATCH,
                                                              PATCH),
          'patch_embed.proj.bias': r(D), 'norm.weight': 1 + r(D),
          'norm.bias': r(D)}
    if registers:
        sd['register_tokens'] = r(1, registers, D)
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        sd.update({
            b + 'norm1.weight': 1 + r(D), b + 'norm1.bias': r(D),
            b + 'attn.qkv.weight': r(3 * D, D), b + 'attn.qkv.bias': r(3 * D),
            b + 'attn.proj.weight': r(D, D), b + 'attn.proj.bias': r(D),
            b + 'ls1.gamma': 1 + r(D),
            b + 'norm2.weight': 1 + r(D), b + 'norm2.bias': r(D),
            b + 'mlp.fc1.weight': r(4 * D, D), b + 'mlp.fc1.bias': r(4 * D),
            b + 'mlp.fc2.weight': r(D, 4 * D), b + 'mlp.fc2.bias': r(D),
            b + 'ls2.gamma': 1 + r(D)})
    return sd


def dinov2_forward(sd, x):
    """DINOv2's forward written from its own key names (float64): patch
    tokens after the final norm, ``(B, D, h, w)``, and [CLS] ``(B, D)``."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    B = x.shape[0]
    t = F.conv2d(x, sd['patch_embed.proj.weight'], sd['patch_embed.proj.bias'],
                 stride=PATCH).flatten(2).transpose(1, 2)
    t = torch.cat([sd['cls_token'].expand(B, -1, -1), t], 1) + sd['pos_embed']
    regs = sd.get('register_tokens', t.new_zeros(1, 0, D))
    t = torch.cat([t[:, :1], regs.expand(B, -1, -1), t[:, 1:]], 1)
    ln = lambda z, n: F.layer_norm(z, (D, ), sd[n + '.weight'],  # noqa: E731
                                   sd[n + '.bias'], 1e-6)
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        q, k, v = F.linear(ln(t, b + 'norm1'), sd[b + 'attn.qkv.weight'],
                           sd[b + 'attn.qkv.bias']).chunk(3, -1)
        heads = lambda z: z.view(B, -1, HEADS, D // HEADS).transpose(1, 2)
        a = (heads(q) @ heads(k).transpose(-1, -2) *
             (D // HEADS)**-0.5).softmax(-1) @ heads(v)
        a = F.linear(a.transpose(1, 2).reshape(B, -1, D),
                     sd[b + 'attn.proj.weight'], sd[b + 'attn.proj.bias'])
        t = t + sd[b + 'ls1.gamma'] * a
        h = F.gelu(F.linear(ln(t, b + 'norm2'), sd[b + 'mlp.fc1.weight'],
                            sd[b + 'mlp.fc1.bias']))
        h = F.linear(h, sd[b + 'mlp.fc2.weight'], sd[b + 'mlp.fc2.bias'])
        t = t + sd[b + 'ls2.gamma'] * h
    t = ln(t, 'norm')
    patches = t[:, 1 + regs.shape[1]:]
    return patches.transpose(1, 2).reshape(B, D, GRID, GRID), t[:, 0]


def build(registers=R, layer_scale=1e-5, **kwargs):
    cfg = dict(
        img_size=IMG, patch_size=PATCH, embed_dims=D, num_layers=DEPTH,
        num_heads=HEADS, out_indices=DEPTH - 1, output_cls_token=True,
        norm_cfg=dict(type='LN', eps=1e-6), patch_bias=True, final_norm=True,
        layer_scale_init_value=layer_scale, num_register_tokens=registers)
    cfg.update(kwargs)
    return PromptedVisionTransformer(**cfg).eval()


def test_detected_and_mask_token_dropped():
    sd = dinov2_state()
    assert is_dinov2_layout(sd) and detect_layout(sd) == 'dinov2'
    state, layout = extract_vit_state_dict({'model': sd})
    assert layout == 'dinov2'
    assert 'mask_token' not in state
    assert state['layers.1.attn.gamma1.weight'] is sd['blocks.1.ls1.gamma']
    assert state['layers.0.ffn.gamma2.weight'] is sd['blocks.0.ls2.gamma']
    assert state['register_tokens'].shape == (1, R, D)
    _, dropped = dinov2_to_mmseg(sd)
    assert dropped == ['mask_token']
    # a plain timm ViT stays timm
    plain = {k: v for k, v in sd.items()
             if 'ls' not in k and k not in ('mask_token', 'register_tokens')}
    assert detect_layout(plain) == 'timm'


@pytest.mark.parametrize('registers', [0, R])
def test_converted_file_matches_dinov2_forward(tmp_path, registers):
    sd = dinov2_state(registers)
    src, dst = tmp_path / 'dinov2.pth', tmp_path / 'mmseg.pth'
    torch.save(sd, src)
    convert([str(src), str(dst)])
    model = build(registers, num_prompts=0,
                  init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    # the raw file loads directly too (auto-detected)
    direct = build(registers)
    report = direct.load_pretrained(str(src))
    assert report['missing'] == [] and report['unexpected'] == []
    x = torch.randn(2, 3, IMG, IMG)
    want_map, want_cls = dinov2_forward(sd, x)
    for m in (model, direct):
        with torch.no_grad():
            (got_map, got_cls), = m(x)
        assert (got_map.double() - want_map).abs().max() <= 1e-4
        assert (got_cls.double() - want_cls).abs().max() <= 1e-4


def test_prompted_model_loads_dinov2_with_prompts_new(tmp_path):
    src = tmp_path / 'dinov2.pth'
    torch.save(dinov2_state(), src)
    model = build(num_prompts=3)
    report = model.load_pretrained(str(src))
    assert report['new'] and all(k.startswith('prompts.')
                                 for k in report['new'])


def test_mmpretrain_dinov2_checkpoint(tmp_path):
    vit = pytest.importorskip('mmpretrain.models.backbones.vision_transformer')
    ref = vit.VisionTransformer(
        arch=dict(embed_dims=D, num_layers=DEPTH, num_heads=HEADS,
                  feedforward_channels=4 * D), img_size=IMG,
        patch_size=PATCH, layer_scale_init_value=1e-5, out_type='featmap',
        final_norm=True, norm_cfg=dict(type='LN', eps=1e-6))
    ref.init_weights()
    for n, p in ref.named_parameters():
        if 'gamma' in n:
            p.data.uniform_(0.5, 1.5)
    ref.eval()
    src = tmp_path / 'mmpretrain_dinov2.pth'
    torch.save({'state_dict': {'backbone.' + k: v
                               for k, v in ref.state_dict().items()}}, src)
    model = build(registers=0, output_cls_token=False)
    assert model.load_pretrained(str(src))['missing'] == []
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        assert (model(x)[0] - ref(x)[0]).abs().max() <= 1e-4


def test_unknown_dinov2_keys_are_an_error():
    sd = dinov2_state()
    sd['blocks.0.mlp.w12.weight'] = torch.zeros(8, D)  # ViT-g SwiGLU
    with pytest.raises(ValueError, match='mlp.w12'):
        extract_vit_state_dict(sd)


@pytest.mark.parametrize('registers,layer_scale,match', [
    (0, 1e-5, 'register_tokens'), (R, 0., 'gamma1')])
def test_dinov2_parts_the_model_lacks_are_an_error(tmp_path, registers,
                                                   layer_scale, match):
    src = tmp_path / 'dinov2.pth'
    torch.save(dinov2_state(), src)
    with pytest.raises(ValueError, match=match):
        build(registers, layer_scale).load_pretrained(str(src))
