"""The digits transfer experiment's classification side: digit images, the
timm-layout round trip of the digits ViT, the few-shot data generator and
the nine method configs (they build, train what the method says, carry a
sweep)."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

pytest.importorskip('mmpretrain')
from mmpretrain.registry import DATASETS, MODELS  # noqa: E402

from mmseg_davpt.digits import (DIGITS_MEAN, DIGITS_STD,  # noqa: E402
                                digit_images)
from mmseg_davpt.digits.cls_data import (draw_cls_splits,  # noqa: E402
                                         make_digits_cls_data)
from mmseg_davpt.digits.pretrain import (DIGITS_VIT,  # noqa: E402
                                         build_digits_vit, mmseg_to_timm,
                                         random_digits_vit_state,
                                         random_shift)
from mmseg_davpt.models.backbones.vit_checkpoint import \
    timm_to_mmseg  # noqa: E402
from tools.make_demo_vit import timm_vit_state_dict  # noqa: E402

from tests._helpers import ROOT
CONFIGS = {
    osp.basename(p)[:-len('_vit-digits.py')]: p
    for p in sorted(glob.glob(osp.join(ROOT, 'configs/digits/cls/*.py')))
}
METHODS = ('linear', 'vpt', 'davpt', 'davpt_plus', 'full', 'davpt_lp_only',
           'davpt_lcls_only', 'davpt_no_refresh', 'davpt_random_map')


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


# ---------------------------------------------------------------- images
def test_digit_images_are_the_scans_upsampled():
    from sklearn.datasets import load_digits
    images, digits, scans = digit_images((5, 9), size=32)
    data = load_digits()
    assert images.dtype == np.uint8 and images.shape == (len(digits), 32, 32)
    assert set(digits) == {5, 9}
    assert len(digits) == int(np.isin(data.target, (5, 9)).sum())
    assert np.array_equal(data.target[scans], digits)
    # bilinear 4x upsampling, align_corners=False: each output pixel at the
    # centre of a 4x4 block lies between the centres of 2x2 scan pixels;
    # block averages of the upsampled image follow the 0-16 scan closely
    blocks = images.reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4)) / 255 * 16
    corr = np.corrcoef(blocks.ravel(), data.images[scans].ravel())[0, 1]
    assert corr > 0.95
    with pytest.raises(ValueError, match='subset of 0-9'):
        digit_images((3, 10))


def test_normalisation_constants_are_the_upstream_pixel_statistics():
    images, _, _ = digit_images(range(5))
    assert DIGITS_MEAN == [DIGITS_MEAN[0]] * 3
    assert abs(images.mean() - DIGITS_MEAN[0]) < 0.01
    assert abs(images.std() - DIGITS_STD[0]) < 0.01


def test_random_shift_moves_content_and_pads_with_zeros():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))
    offsets = {tuple(torch.nonzero(o[0])[0].tolist()) for o in out}
    assert offsets <= {(r, c) for r in range(1, 6) for c in range(1, 6)}
    assert len(offsets) > 5  # shifts differ between images
    assert torch.equal(random_shift(x, 0, None), x)


# ---------------------------------------------------------------- layout
def test_digits_vit_saves_in_timm_layout_and_round_trips():
    state = random_digits_vit_state(seed=0)
    # the independent reference: tools/make_demo_vit.py's timm key layout
    ref = timm_vit_state_dict(embed_dims=64, depth=4, patch=4, img_size=32,
                              num_classes=5)
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in ref.items()}
    backbone = build_digits_vit()
    backbone.load_state_dict(timm_to_mmseg(state))
    mmseg = backbone.state_dict()
    assert all(torch.equal(mmseg[k], v)
               for k, v in timm_to_mmseg(mmseg_to_timm(mmseg)).items())
    # the seed decides the random ViT
    assert torch.equal(state['pos_embed'],
                       random_digits_vit_state(0)['pos_embed'])
    assert not torch.equal(state['pos_embed'],
                           random_digits_vit_state(1)['pos_embed'])
    with pytest.raises(ValueError, match='no timm name'):
        mmseg_to_timm({'prompts.0': torch.zeros(1)})


def test_timm_file_loads_through_the_converter_into_the_configs_backbone(
        tmp_path):
    from tools.convert_vit_checkpoint import main as convert
    state = random_digits_vit_state(seed=3)
    src, dst = str(tmp_path / 'timm.pth'), str(tmp_path / 'mmseg.pth')
    torch.save(state, src)
    convert([src, dst])
    cfg = Config.fromfile(CONFIGS['linear'])
    cfg.model.backbone.init_cfg.checkpoint = dst
    model = MODELS.build(cfg.model)
    model.init_weights()
    direct = build_digits_vit()
    direct.load_state_dict(timm_to_mmseg(state))
    model.eval()
    direct.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.backbone(x)[0], direct(x)[0], atol=1e-6)
    assert DIGITS_VIT['patch_size'] == cfg.model.backbone.patch_size


# ---------------------------------------------------------------- data
def read_split(root, split):
    with open(osp.join(root, f'{split}.txt')) as f:
        return [tuple(line.split()) for line in f if line.strip()]


def test_splits_are_disjoint_per_class_and_seeded():
    digits = np.repeat(np.arange(5), [30, 31, 25, 40, 22])
    a = draw_cls_splits(digits, seed=0, shots=10)
    assert sorted(np.concatenate(list(a.values()))) == list(range(len(digits)))
    for part, per_class in (('train', 10), ('val', 10)):
        assert np.bincount(digits[a[part]]).tolist() == [per_class] * 5
    assert np.bincount(digits[a['test']]).tolist() == [10, 11, 5, 20, 2]
    b = draw_cls_splits(digits, seed=0, shots=10)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = draw_cls_splits(digits, seed=1, shots=10)
    assert not np.array_equal(a['train'], c['train'])
    with pytest.raises(ValueError, match='shots must be in'):
        draw_cls_splits(digits, seed=0, shots=11)


def test_make_digits_cls_data_writes_the_vtab_layout(tmp_path):
    root = str(tmp_path / 'seed4')
    counts = make_digits_cls_data(root, seed=4, shots=10)
    assert counts == dict(train800=50, val200=50, train800val200=100,
                          test=896 - 100)
    files = {s: read_split(root, s) for s in counts}
    names = {s: {p for p, _ in rows} for s, rows in files.items()}
    assert not names['train800'] & names['val200']
    assert not names['test'] & names['train800val200']
    assert names['train800val200'] == names['train800'] | names['val200']
    assert len(names['test'] | names['train800val200']) == 896
    # labels are digit - 5, and the PNG is the 32x32 image of that scan
    import cv2
    images, digits, scans = digit_images(range(5, 10))
    row = {int(s): i for i, s in enumerate(scans)}
    for path, label in files['train800'][:5] + files['test'][:5]:
        i = row[int(osp.basename(path)[:-4])]
        assert int(label) == digits[i] - 5
        assert np.array_equal(cv2.imread(osp.join(root, path), 0), images[i])
    # the project's VTAB1k dataset reads it, with the digits as class names
    ds = DATASETS.build(dict(type='VTAB1k', data_root=root, split='val200',
                             num_classes=5,
                             classes=('5', '6', '7', '8', '9')))
    assert len(ds) == 50 and ds.metainfo['classes'][0] == '5'
    # the same seed is left as it is; another seed is refused
    assert make_digits_cls_data(root, seed=4, shots=10) == counts
    with pytest.raises(ValueError, match='seed 4'):
        make_digits_cls_data(root, seed=5)
    other = str(tmp_path / 'seed5')
    make_digits_cls_data(other, seed=5)
    assert {p for p, _ in read_split(other, 'train800')} != names['train800']
    with open(osp.join(root, 'digits_cls.json')) as f:
        assert json.load(f)['seed'] == 4


# ---------------------------------------------------------------- configs
def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_there_are_the_nine_method_configs():
    assert sorted(CONFIGS) == sorted(METHODS)


@pytest.fixture(scope='module')
def models():
    # module fixtures are set up before the function-scoped scope fixture
    # above, so this one names mmpretrain's scope itself (an earlier test
    # file may have left mmseg's as the default)
    from mmengine.registry import DefaultScope
    out = {}
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for method in METHODS:
            cfg = Config.fromfile(CONFIGS[method])
            out[method] = (cfg, MODELS.build(cfg.model))
    return out


def test_configs_train_what_the_method_says(models):
    sets = {m: trainable(model) for m, (_, model) in models.items()}
    head = {'head.fc.weight', 'head.fc.bias'}
    prompts = {f'backbone.prompts.{i}' for i in range(4)}
    kv = {f'backbone.layers.{i}.attn.attn.{b}_bias' for i in range(4)
          for b in 'kv'}
    assert sets['linear'] == head
    assert sets['vpt'] == head | prompts
    for m in ('davpt', 'davpt_lp_only', 'davpt_lcls_only',
              'davpt_no_refresh', 'davpt_random_map'):
        assert sets[m] == head | prompts, m
    # DA-VPT+: plus the key and value biases of every layer
    assert sets['davpt_plus'] == head | prompts | kv
    every = {n for n, _ in models['full'][1].named_parameters()}
    assert sets['full'] == every
    # same prompt layout for every prompted method: 3 per layer
    for m in ('vpt', 'davpt', 'davpt_plus'):
        assert models[m][1].backbone.prompt_counts == [3, 3, 3, 3]
    assert models['linear'][1].backbone.prompt_counts == [0] * 4


def test_configs_differ_where_the_ablation_says(models):
    def guidance(m):
        return models[m][0].model.get('metric_guidance')

    def hook(m):
        hooks = models[m][0].get('custom_hooks') or []
        return [h for h in hooks if h['type'] == 'ClassPromptMappingHook']

    for m in ('linear', 'vpt', 'full'):
        assert guidance(m) is None and not hook(m)
    assert guidance('davpt_lp_only').loss_cls is None
    assert guidance('davpt_lp_only').loss_prompt is not None
    assert guidance('davpt_lcls_only').loss_prompt is None
    assert guidance('davpt_lcls_only').loss_cls is not None
    assert hook('davpt')[0].get('refresh', True)
    assert hook('davpt')[0].get('initial', 'kmeans') == 'kmeans'
    assert hook('davpt_no_refresh')[0]['refresh'] is False
    assert hook('davpt_no_refresh')[0].get('initial', 'kmeans') == 'kmeans'
    assert hook('davpt_random_map')[0]['initial'] == 'random'
    assert models['davpt'][1].backbone.guided_layers == (3, )


def test_every_config_carries_an_equal_budget_sweep(models):
    for method, (cfg, _) in models.items():
        sweep = cfg.sweep
        assert sweep.metric == 'accuracy/top1'
        sizes = [len(v) for v in sweep.grid.values()]
        assert int(np.prod(sizes)) == 4, method
        for key in sweep.grid:
            assert cfg.get(key.split('.')[0]) is not None, (method, key)
        roots = {k: v for k, v in sweep.seed_options.items()
                 if k.endswith('data_root')}
        assert len(roots) == 3 and set(roots.values()) == \
            {'data/digits/cls/seed{seed}'}
        assert sweep.final_options == {
            'train_dataloader.dataset.split': 'train800val200'}
        assert cfg.train_dataloader.dataset.split == 'train800'
        assert cfg.val_dataloader.dataset.split == 'val200'
        assert cfg.test_dataloader.dataset.split == 'test'
        pre = cfg.model.data_preprocessor
        assert pre.mean == DIGITS_MEAN and pre.std == DIGITS_STD
        assert cfg.model.backbone.init_cfg.checkpoint == \
            'data/digits/vit-digits_mmseg.pth'


# ---------------------------------------------------------------- training
@pytest.fixture(scope='module')
def digits_run_inputs(tmp_path_factory):
    """A seed's data folder and a random digits ViT in the configs' layout
    (the pretrained one is the slow probe test's business)."""
    from tools.convert_vit_checkpoint import main as convert
    tmp = tmp_path_factory.mktemp('digits_cls_run')
    make_digits_cls_data(str(tmp / 'seed2'), seed=2)
    src, dst = str(tmp / 'vit_timm.pth'), str(tmp / 'vit_mmseg.pth')
    torch.save(random_digits_vit_state(seed=0), src)
    convert([src, dst])
    return tmp, dst


def short_run(method, tmp, ckpt, work_dir, seed=2):
    from mmengine.runner import Runner
    cfg = Config.fromfile(CONFIGS[method])
    root = str(tmp / f'seed{seed}')
    options = {
        'model.backbone.init_cfg.checkpoint': ckpt,
        'train_cfg.max_epochs': 2, 'train_cfg.val_interval': 2,
        'randomness.seed': seed, 'work_dir': str(work_dir),
        'default_hooks.logger.interval': 1}
    for loader in ('train', 'val', 'test'):
        options[f'{loader}_dataloader.dataset.data_root'] = root
    cfg.merge_from_dict(options)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.slow
def test_davpt_config_trains_with_guidance_and_refreshes(digits_run_inputs,
                                                         tmp_path):
    tmp, ckpt = digits_run_inputs
    runner = short_run('davpt', tmp, ckpt, tmp_path)
    hub = runner.message_hub
    for key in ('train/davpt.loss_prompt', 'train/davpt.loss_cls'):
        assert key in hub.log_scalars, sorted(hub.log_scalars)
        assert hub.log_scalars[key].current() > 0
    with open(tmp_path / 'davpt_mapping_history.jsonl') as f:
        history = [json.loads(line) for line in f]
    # the initial k-means pass, then a refresh after each of the 2 epochs
    assert [h['what'] for h in history] == \
        ['initial mapping'] + ['mapping refreshed'] * 2
    assert history[0]['seen_classes'] == 5
    assert 'accuracy/top1' in runner.val_loop.run()


@pytest.mark.slow
def test_random_map_config_keeps_the_seeded_random_assignment(
        digits_run_inputs, tmp_path):
    from mmseg_davpt.models.guidance.class_prompt_mapping import \
        ClassPromptMapping
    tmp, ckpt = digits_run_inputs
    runner = short_run('davpt_random_map', tmp, ckpt, tmp_path, seed=2)
    mapping = runner.model.metric_guidance.mapping
    expected = ClassPromptMapping(num_classes=5, num_prompts=3,
                                  embed_dims=64)
    expected.assign_random(seed=2)
    assert torch.equal(mapping.class_to_prompt, expected.class_to_prompt)
    assert int(mapping.num_refreshes) == 1  # never refreshed
    with open(tmp_path / 'davpt_mapping_history.jsonl') as f:
        history = [json.loads(line) for line in f]
    assert [h['what'] for h in history] == ['random fixed mapping (seed 2)']


def test_pretrain_tool_probe_only_needs_the_file(tmp_path, capsys):
    from tools.pretrain_digits_vit import main
    with pytest.raises(SystemExit):
        main(['--out', str(tmp_path / 'missing.pth'), '--probe-only'])
    assert 'no such file' in capsys.readouterr().err
