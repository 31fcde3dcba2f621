"""The 216 classification configs (3 variants x 3 pre-trainings x 24 tasks):
generated files in sync, every config builds, ViT-B trainable parameters,
every task's dataset block reads its split files; train / test / dist_train
on the classification demo config."""
import glob
import json
import os.path as osp
import re
import subprocess

import pytest
import torch
from mmengine.config import Config

pytest.importorskip('mmpretrain')
from mmpretrain.registry import DATASETS  # noqa: E402

from mmseg_davpt.datasets import generate_cls_folders  # noqa: E402
from mmseg_davpt.datasets.fgvc import FGVC_TASKS  # noqa: E402
from mmseg_davpt.datasets.vtab1k import VTAB_TASKS  # noqa: E402
from tests._helpers import ROOT, free_port, run_main, tool_env  # noqa
from tools.count_params import build_model, count_params, summarise  # noqa
from tools.generate_cls_configs import main as generate_main  # noqa: E402
from tools.export_peft import main as export_peft  # noqa: E402
from tools.test import main as evaluate  # noqa: E402
from tools.train import main as train_main  # noqa: E402

CLS_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/cls/*/*.py')))
# ViT-B/16 configs; the DINOv2 ViT-B/14 ones (same folders) are checked in
# test_dinov2_cls_configs.py
CLS_CONFIGS = [c for c in CLS_CONFIGS
               if '/_base_/' not in c and '_vit-b14-dinov2_' not in c]
DEMO = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')

# ViT-B/16: 12 layers, D = 768, 20 prompts per layer (~20 in the paper).
PROMPTS = 12 * 20 * 768
KV_BIASES = 12 * 2 * 768


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Classification datasets and models come from mmpretrain's registry."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def test_generated_configs_are_complete_and_in_sync(capsys):
    assert generate_main(['--check']) == 0, capsys.readouterr().out
    assert len(CLS_CONFIGS) == 3 * 3 * (len(FGVC_TASKS) + len(VTAB_TASKS))
    assert len(CLS_CONFIGS) == 216


@pytest.mark.slow
def test_every_config_builds_with_its_classes_and_task():
    """All 216 parsed; each model built (backbone shrunk to one layer, so
    the whole set builds in seconds: the ViT-B itself is checked below)."""
    for path in CLS_CONFIGS:
        cfg = Config.fromfile(path)
        name = osp.basename(path)
        variant, _, rest = name.partition('_vit-b16-')
        benchmark, task = rest[:-3].split('_', 1)[1].split('-', 1)
        tasks = FGVC_TASKS if benchmark == 'fgvc' else VTAB_TASKS
        num_classes = tasks[task]['num_classes'] if benchmark == 'fgvc' \
            else tasks[task]
        assert cfg.model.head.num_classes == num_classes, name
        for split in ('train', 'val', 'test'):
            assert cfg[f'{split}_dataloader'].dataset.task == task, name
        assert (cfg.model.get('metric_guidance') is not None) == \
            variant.startswith('davpt'), name
        assert cfg.model.backbone.get('tune_params', ()) == \
            ('kv' if variant == 'davpt_plus' else ()), name
        # train / select on a held-out val split / test, and the report
        splits = ('train', 'val', 'test') if benchmark == 'fgvc' else \
            ('train800', 'val200', 'test')
        assert tuple(cfg[f'{s}_dataloader'].dataset.split for s in
                     ('train', 'val', 'test')) == splits, name
        assert cfg.default_hooks.report.type == 'ClsReportHook', name
        cfg.model.backbone.num_layers = 1
        if cfg.model.backbone.get('guided_layers'):
            cfg.model.backbone.guided_layers = (0, )
        model = build_model(cfg)
        assert model.head.fc.out_features == num_classes


@pytest.mark.parametrize('variant,prompts,biases', [
    ('vpt', PROMPTS, 0), ('davpt', PROMPTS, 0),
    ('davpt_plus', PROMPTS, KV_BIASES)])
def test_vit_b_trainable_parameters(variant, prompts, biases):
    cfg = Config.fromfile(
        osp.join(ROOT, f'configs/cls/fgvc/{variant}_vit-b16-in21k_fgvc-cub.py'))
    summary = summarise(count_params(build_model(cfg)))
    groups = summary['groups']
    assert groups['backbone.prompts']['trainable'] == prompts
    assert groups['backbone.tuned_pretrained']['trainable'] == biases
    # ViT-B/16 itself: 85.8M frozen weights (86M with the patch embedding)
    assert abs(groups['backbone.frozen']['total'] / 1e6 - 85.8) < 0.1
    # head: 768 x 200 + 200
    assert summary['subtotals']['heads']['trainable'] == 768 * 200 + 200
    # the paper's ViT-B range without the head (~0.2M)
    assert 0.15 <= summary['subtotals']['backbone']['trainable'] / 1e6 <= 0.3


@pytest.fixture(scope='module')
def split_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls_splits')
    small = dict(train800=4, val200=2, test=2)
    vtab = generate_cls_folders(str(root / 'vtab'), 'vtab', num_classes=2,
                                per_split=small, img_size=16)
    fgvc = generate_cls_folders(str(root / 'fgvc'), 'fgvc', num_classes=2,
                                per_split=dict(train=4, val=2, test=2),
                                img_size=16)
    return vtab, fgvc


@pytest.mark.slow
def test_every_task_dataset_block_reads_split_files(split_folders):
    """Each task's dataset dicts (one variant / pre-training: the generator
    writes the same block for all) build on generated folders."""
    vtab, fgvc = split_folders
    for path in CLS_CONFIGS:
        name = osp.basename(path)
        if not name.startswith('vpt_vit-b16-in21k_'):
            continue
        cfg = Config.fromfile(path)
        is_fgvc = '_fgvc-' in name
        # train800 / val200 (VTAB-1k), train / val (FGVC), and test
        for split, size in (('train', 4), ('val', 2), ('test', 2)):
            ds_cfg = cfg[f'{split}_dataloader'].dataset
            ds_cfg.data_root = fgvc if is_fgvc else vtab
            if is_fgvc:
                ds_cfg.image_prefix = 'images'  # the generated layout
            dataset = DATASETS.build(ds_cfg)
            assert len(dataset) == size, name
            sample = dataset[0]
            assert tuple(sample['inputs'].shape) == (3, 224, 224), name


# ------------------------------------------------------------- tools
def run(args, timeout=300, threads='2', **env):
    proc = subprocess.run(args, cwd=ROOT, env=tool_env(threads, **env),
                          capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope='module')
def demo_cls(tmp_path_factory, demo_data):
    root = tmp_path_factory.mktemp('demo_cls')
    data = generate_cls_folders(str(root / 'data'), 'vtab', num_classes=6,
                                per_split=dict(train800=40, val200=8,
                                               test=24))
    vit = osp.join(osp.dirname(demo_data[1]), 'vit_timm.pth')
    opts = [f'model.backbone.init_cfg.checkpoint={vit}',
            'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=1']
    opts += [f'{s}_dataloader.dataset.data_root={data}'
             for s in ('train', 'val', 'test')]
    return root, opts


@pytest.mark.slow
def test_train_and_test_tools_report_top1(demo_cls):
    root, opts = demo_cls
    work = str(root / 'train')
    log = run_main(train_main, [DEMO, '--work-dir', work, '--cfg-options',
                                *opts], work)
    assert 'DA-VPT: initial mapping (iter 0)' in log
    # one refresh per epoch (48 images / 16 per batch = 3 iterations)
    assert 'DA-VPT: mapping refreshed (iter 3)' in log
    assert 'DA-VPT: mapping refreshed (iter 6)' in log
    assert re.search(r'davpt\.loss_prompt: [0-9.]+', log)
    top1 = [float(v) for v in re.findall(r'accuracy/top1: ([0-9.]+)', log)]
    # 29.17 on the seeded demo run (6 classes: chance is 16.67)
    assert len(top1) == 1 and top1[0] >= 25.
    # the demo is VTAB-1k's final protocol (validate on test): the report
    # gives (a) and (c) and says why (b) is not available
    with open(osp.join(work, 'davpt_report.json')) as f:
        report = json.load(f)
    assert report['finished'] and report['selected_test'] is None
    assert 'val split is the test split' in report['selection_unavailable']
    assert report['final_test'] == report['best_test'] == \
        pytest.approx(top1[0], abs=1e-3)
    assert '(b) selected on val: not available' in log
    ckpt = osp.join(work, 'epoch_2.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    mapping = state['state_dict'][
        'metric_guidance.mapping.class_to_prompt']
    assert mapping.shape == (6, ) and (mapping >= 0).all()

    out = osp.join(str(root), 'preds.pkl')
    log = run_main(evaluate, [DEMO, ckpt, '--work-dir', root / 'test',
                               '--out', out, '--cfg-options', *opts],
                   root / 'test')
    # the test tool evaluates the same model on the same split
    assert float(re.findall(r'accuracy/top1: ([0-9.]+)', log)[-1]) == \
        top1[0]
    import pickle
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 24

    # PEFT export (prompts, head, mapping) and evaluation from it
    peft = osp.join(str(root), 'peft.pth')
    export_peft([DEMO, ckpt, peft, '--cfg-options', *opts])
    assert osp.getsize(peft) < osp.getsize(ckpt) / 2
    log = run_main(evaluate, [DEMO, peft, '--work-dir', root / 'test_peft',
                               '--cfg-options', *opts], root / 'test_peft')
    assert float(re.findall(r'accuracy/top1: ([0-9.]+)', log)[-1]) == \
        top1[0]


@pytest.mark.slow
def test_two_process_dist_train_classification(demo_cls, tmp_path):
    _, opts = demo_cls
    port = free_port()
    log = run(['bash', 'tools/dist_train.sh', DEMO, '2', '--work-dir',
               str(tmp_path), '--cfg-options', *opts,
               'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
              threads='1', PORT=str(port))
    # initial mapping + one refresh, each checked across the 2 ranks
    assert log.count('identical on all 2 ranks') == 2
    assert re.search(r'accuracy/top1: [0-9.]+', log)
