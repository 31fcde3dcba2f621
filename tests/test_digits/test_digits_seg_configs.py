"""The digit-scenes segmentation configs: they build with the expected
trainable parameters, load the 32x32-pretrained tiny ViT into the 64x64
backbone (position embeddings resized), normalise as the pretraining does,
and declare the same-sized tuning protocol; a DA-VPT run trains with the
mapping refreshed and evaluates on the test split."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from tools.count_params import build_model, count_params, summarise

from tests._helpers import ROOT
SEG = osp.join(ROOT, 'configs', 'digits', 'seg')
METHODS = ('vpt', 'davpt', 'davpt_plus', 'davpt_lp_only')
D, LAYERS, PROMPTS, GUIDED = 64, 4, 8, 4


def config(method):
    return Config.fromfile(
        osp.join(SEG, f'{method}_setr_vit-digits_scenes-64x64.py'))


def test_the_four_methods_are_shipped():
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(SEG, '*.py')))
    assert names == sorted(f'{m}_setr_vit-digits_scenes-64x64.py'
                           for m in METHODS)


@pytest.mark.parametrize('method', METHODS)
def test_trainable_parameters(method):
    """Prompts per layer (8, 4 in the guided last layer of DA-VPT), K/V
    biases only for DA-VPT+, every head trains, the ViT stays frozen."""
    cfg = config(method)
    groups = summarise(count_params(build_model(cfg)))['groups']
    davpt = method != 'vpt'
    prompts = ((LAYERS - 1) * PROMPTS + GUIDED if davpt else
               LAYERS * PROMPTS) * D
    assert groups['backbone.prompts']['trainable'] == prompts
    tuned = LAYERS * 2 * D if method == 'davpt_plus' else 0
    assert groups['backbone.tuned_pretrained']['trainable'] == tuned
    assert groups['backbone.frozen']['trainable'] == 0
    for name, row in groups.items():
        if name.split('.')[0].endswith('head'):
            assert row['trainable'] == row['total'] > 0, name
    guidance = cfg.model.get('metric_guidance')
    assert (guidance is not None) == davpt
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    assert hooks == (['ClassPromptMappingHook'] if davpt else [])
    if davpt:
        assert tuple(guidance.background_classes) == (0, )
        assert tuple(cfg.model.backbone.guided_layers) == (LAYERS - 1, )
        assert (guidance.loss_cls is None) == (method == 'davpt_lp_only')
        assert guidance.loss_prompt.loss_weight == 0.05


def test_normalisation_is_the_pretraining_one():
    from mmseg_davpt.digits import DIGITS_MEAN, DIGITS_STD
    for method in METHODS:
        pre = config(method).model.data_preprocessor
        assert list(pre.mean) == list(DIGITS_MEAN)
        assert list(pre.std) == list(DIGITS_STD)


def test_sweep_protocol_is_the_same_size_for_every_method():
    sizes = set()
    for method in METHODS:
        cfg = config(method)
        sweep = cfg.sweep
        assert sweep.metric == 'mIoU'
        size = 1
        for key, values in sweep.grid.items():
            cfg.get(key.split('.')[0])  # the key's top level exists
            size *= len(values)
        sizes.add(size)
        roots = {k: v for k, v in sweep.seed_options.items()
                 if k.endswith('data_root')}
        assert set(roots) == {f'{s}_dataloader.dataset.data_root'
                              for s in ('train', 'val', 'test')}
        assert set(roots.values()) == {'data/digits/seg/seed{seed}'}
        assert sweep.seed_options['randomness.seed'] == '{seed}'
        assert sweep.final_options == {
            'train_dataloader.dataset.data_prefix.img_path':
            'img_dir/trainval',
            'train_dataloader.dataset.data_prefix.seg_map_path':
            'ann_dir/trainval'}
        assert cfg.test_dataloader.dataset.data_prefix.img_path == \
            'img_dir/test'
        assert cfg.val_dataloader.dataset.data_prefix.img_path == \
            'img_dir/val'
    assert len(sizes) == 1 and sizes.pop() >= 2


@pytest.fixture(scope='module')
def digits_vit(tmp_path_factory):
    """A random ViT of the digits ViT's shape (32x32 input, patch 4, 64
    dims, 4 layers), timm layout converted to MMSegmentation's."""
    from tools.convert_vit_checkpoint import main as convert
    from tools.make_demo_vit import timm_vit_state_dict
    root = tmp_path_factory.mktemp('vit')
    timm, mmseg = str(root / 'timm.pth'), str(root / 'mmseg.pth')
    torch.save(timm_vit_state_dict(embed_dims=D, depth=LAYERS, patch=4,
                                   img_size=32, num_classes=5, seed=1), timm)
    convert([timm, mmseg])
    return timm, mmseg


def test_pretrained_8x8_grid_is_resized_to_16x16(digits_vit):
    timm, mmseg = digits_vit
    cfg = config('davpt')
    cfg.model.backbone.init_cfg.checkpoint = mmseg
    model = build_model(cfg)
    model.init_weights()
    source = torch.load(timm, map_location='cpu')['pos_embed']
    pos = model.backbone.pos_embed.detach()
    assert source.shape == (1, 1 + 8 * 8, D) and pos.shape == (1, 257, D)
    assert torch.equal(pos[:, 0], source[:, 0])  # [CLS] kept as is
    grid = source[0, 1:].reshape(1, 8, 8, D).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(
        grid, size=(16, 16), mode='bilinear', align_corners=False)
    torch.testing.assert_close(
        pos[0, 1:].reshape(16, 16, D).permute(2, 0, 1), expected[0])
    assert torch.equal(
        model.backbone.state_dict()['layers.2.attn.attn.in_proj_weight'],
        torch.load(mmseg, map_location='cpu')
        ['layers.2.attn.attn.in_proj_weight'])


@pytest.mark.slow
def test_davpt_trains_refreshes_mapping_and_tests(digits_vit, tmp_path):
    """A few iterations of the DA-VPT config on small scenes, through the
    tools' ``main``: initial mapping, refreshes, a val and a test score."""
    from mmseg_davpt.digits import make_digit_scenes
    from tools.test import main as test_main
    from tools.train import main as train_main
    data = make_digit_scenes(str(tmp_path / 'scenes'), seed=0,
                             num_scenes=(8, 4, 4))
    work = tmp_path / 'work'
    opts = [f'model.backbone.init_cfg.checkpoint={digits_vit[1]}',
            'train_dataloader.batch_size=4', 'train_cfg.max_iters=6',
            'train_cfg.val_interval=6',
            'default_hooks.checkpoint.interval=6',
            'default_hooks.logger.interval=2', 'custom_hooks.0.interval=3']
    opts += [f'{s}_dataloader.dataset.data_root={data}'
             for s in ('train', 'val', 'test')]
    cfg = osp.join(SEG, 'davpt_setr_vit-digits_scenes-64x64.py')
    train_main([cfg, '--work-dir', str(work), '--cfg-options', *opts])
    with open(work / 'davpt_mapping_history.jsonl') as f:
        assert [json.loads(line)['iter'] for line in f] == [0, 2, 5]
    test_dir = tmp_path / 'test'
    test_main([cfg, str(work / 'iter_6.pth'), '--work-dir', str(test_dir),
               '--cfg-options', *opts])
    scores = [json.load(open(p)) for p in glob.glob(
        str(test_dir / '*' / '*.json'))]
    assert len(scores) == 1 and 0 <= scores[0]['mIoU'] <= 100
    # 4 test scenes, all pixels scored
    assert 0 < scores[0]['aAcc'] <= 100
