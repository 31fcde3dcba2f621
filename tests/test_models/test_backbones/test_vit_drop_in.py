"""The prompted ViT as a drop-in for MMSegmentation's VisionTransformer:
``pretrained=`` semantics, init_cfg checks, and MMSegmentation's own
ViT model layouts (UPerNet + MultiLevelNeck, Segmenter) built and trained
with it at tiny size."""
import copy
import os.path as osp

import mmseg
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models import VisionTransformer
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models import PromptedVisionTransformer

CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                   '_base_', 'models')
TINY = dict(img_size=(64, 64), patch_size=8, embed_dims=64, num_heads=4)
NUM_CLASSES = 5


def mmseg_model_cfg(name):
    """``model`` of one of MMSegmentation's shipped base configs."""
    path = osp.join(CONFIGS, name)
    if not osp.exists(path):
        pytest.skip(f'MMSegmentation configs not installed ({path})')
    return copy.deepcopy(Config.fromfile(path)._cfg_dict['model'].to_dict())


def no_sync_bn(cfg):
    """SyncBN -> BN (CPU, one process), recursively."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for v in cfg.values():
            no_sync_bn(v)
    elif isinstance(cfg, list):
        for v in cfg:
            no_sync_bn(v)
    return cfg


def upernet_mln(**backbone):
    """mmseg's ``upernet_vit-b16_ln_mln.py`` at tiny size: 4 tapped layers,
    neck rescaling them by 4, 2, 1, 0.5."""
    cfg = no_sync_bn(mmseg_model_cfg('upernet_vit-b16_ln_mln.py'))
    cfg['pretrained'] = None
    cfg['data_preprocessor']['size'] = (64, 64)
    cfg['backbone'].update(type='PromptedVisionTransformer', **TINY,
                           num_layers=4, out_indices=(0, 1, 2, 3),
                           num_prompts=4, **backbone)
    cfg['neck'].update(in_channels=[64] * 4, out_channels=64)
    cfg['decode_head'].update(in_channels=[64] * 4, channels=16,
                              num_classes=NUM_CLASSES)
    cfg['auxiliary_head'].update(in_channels=64, channels=16,
                                 num_classes=NUM_CLASSES)
    return cfg


def segmenter(pretrained=None, **backbone):
    """mmseg's ``segmenter_vit-b16_mask.py`` at tiny size (final_norm, mask
    transformer head on the last layer)."""
    cfg = mmseg_model_cfg('segmenter_vit-b16_mask.py')
    cfg['pretrained'] = pretrained
    cfg['data_preprocessor']['size'] = (64, 64)
    cfg['backbone'].update(type='PromptedVisionTransformer', **TINY,
                           num_layers=2, num_prompts=4, **backbone)
    cfg['decode_head'].update(in_channels=64, channels=64, num_heads=4,
                              embed_dims=64, num_layers=1,
                              num_classes=NUM_CLASSES)
    cfg['test_cfg'] = dict(mode='whole')
    return cfg


def build(cfg):
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        # a ConfigDict as from a config file (mmseg reads test_cfg.mode)
        model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model


def batch(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, 64, 64), generator=g,
                                    dtype=torch.uint8))
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(
            0, NUM_CLASSES, (1, 64, 64), generator=g))
        s.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def train_steps(model, steps=3):
    """A few SGD steps; returns the losses and the backbone before / after."""
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    wrapper = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1))
    model.train()
    losses = [model.train_step(batch(seed=i), wrapper) for i in range(steps)]
    return losses, before, model.backbone.state_dict()


@pytest.mark.parametrize('layout', [upernet_mln, segmenter])
def test_mmseg_vit_layouts_train_with_the_prompted_backbone(layout):
    model = build(layout())
    assert isinstance(model.backbone, PromptedVisionTransformer)
    losses, before, after = train_steps(model)
    for step in losses:
        assert all(torch.isfinite(v).all() for v in step.values())
    assert any(torch.isfinite(v) and v > 0 for v in losses[0].values())
    # prompts trained, the pretrained body did not
    for key in before:
        changed = not torch.equal(before[key], after[key])
        assert changed == key.startswith('prompts.'), key
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch(n=1))
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)


def tiny_mmseg_vit_checkpoint(path):
    torch.manual_seed(1)
    vit = VisionTransformer(**TINY, num_layers=2, final_norm=True,
                            norm_cfg=dict(type='LN', eps=1e-6,
                                          requires_grad=True))
    vit.init_weights()
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    torch.save(vit.state_dict(), path)
    return vit.state_dict()


def test_model_level_pretrained_loads_into_the_backbone(tmp_path):
    path = str(tmp_path / 'vit_tiny.pth')
    state = tiny_mmseg_vit_checkpoint(path)
    cfg = segmenter(pretrained=path)
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = build(cfg)
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=path)
    own = model.backbone.state_dict()
    assert set(state) == {k for k in own if not k.startswith('prompts.')}
    for key, value in state.items():
        assert torch.equal(own[key], value), key
    train_steps(model, steps=1)


def test_pretrained_argument_semantics(tmp_path):
    kw = dict(**TINY, num_layers=2)
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = PromptedVisionTransformer(**kw, pretrained='vit.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='vit.pth')
    assert model.pretrained == 'vit.pth'
    with pytest.raises(ValueError, match='init_cfg and pretrained cannot be '
                       'set at the same time'):
        PromptedVisionTransformer(
            **kw, pretrained='a.pth',
            init_cfg=dict(type='Pretrained', checkpoint='b.pth'))
    with pytest.raises(TypeError, match='pretrained must be a str or None'):
        PromptedVisionTransformer(**kw, pretrained=dict(checkpoint='a.pth'))
    # EncoderDecoder refuses a backbone-level and a model-level pretrained
    cfg = segmenter(pretrained='a.pth')
    cfg['backbone']['pretrained'] = 'b.pth'
    with pytest.raises(AssertionError, match='both backbone and segmentor'):
        build(cfg)


@pytest.mark.parametrize('init_cfg, match', [
    # a typo is named at build time, not as KeyError in init_weights
    (dict(type='Pretrained', checkpont='vit.pth'),
     r"unknown key\(s\) \['checkpont'\]; expected keys: 'checkpoint' "
     r"\(required\), 'prefix', 'map_location'"),
    (dict(type='Pretrained', prefix='backbone.'), "no 'checkpoint'"),
])
def test_init_cfg_keys_are_checked(init_cfg, match):
    with pytest.raises(ValueError, match=match):
        PromptedVisionTransformer(**TINY, num_layers=2, init_cfg=init_cfg)


def test_map_location_and_prefix_reach_the_loader(tmp_path):
    path = str(tmp_path / 'vit_tiny.pth')
    state = tiny_mmseg_vit_checkpoint(path)
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in state.items()}), path)
    model = PromptedVisionTransformer(
        **TINY, num_layers=2, final_norm=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        init_cfg=dict(type='Pretrained', checkpoint=path,
                      prefix='backbone.', map_location='cpu'))
    model.init_weights()
    assert torch.equal(model.pos_embed, state['pos_embed'])
