"""Settings and inputs whose combination cannot mean what it says are
refused (naming the options) or reported with counts; empty validation and
test splits are named before the run starts."""
import json
import logging
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmseg_davpt.datasets import generate_cls_folders
from mmseg_davpt.datasets.split_checks import (shared_images,
                                               warn_repeated_entries)
from mmseg_davpt.engine import ClassPromptMappingHook
from mmseg_davpt.engine.hooks.cls_report_hook import ClsReportHook
from mmseg_davpt.engine.hooks.mapping_settings import first_refresh
from mmseg_davpt.models.backbones.layer_indices import \
    normalise_layer_indices
from mmseg_davpt.utils.cls_report import format_report, summarise_epochs
from mmseg_davpt.utils.model import build_model
from tools import run_seeds

from tests._tiny import segmentor

from tests._helpers import ROOT
VPT = osp.join(ROOT, 'configs/demo/vpt_setr_vit-tiny_shapes-64x64.py')


def loop(kind):
    return kind.__new__(kind)  # only its type is looked at


class Log(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def logger():
    handler = Log()
    log = logging.getLogger(f'reliability_settings_{id(handler)}')
    log.handlers = [handler]
    log.setLevel(logging.INFO)
    return log, handler.lines


# ------------------------------------------------------ mapping hook
def test_epoch_refresh_in_an_iteration_loop_is_refused():
    hook = ClassPromptMappingHook(by_epoch=True, interval=1)
    log, _ = logger()
    runner = SimpleNamespace(train_loop=loop(IterBasedTrainLoop), logger=log)
    with pytest.raises(ValueError) as err:
        hook.before_train(runner)
    for part in ('ClassPromptMappingHook(by_epoch=True)',
                 'IterBasedTrainLoop', 'never be refreshed',
                 'by_epoch=False', 'refresh=False'):
        assert part in str(err.value)
    # refresh=False never refreshes anyway: nothing to refuse
    runner.model = None
    with pytest.raises(TypeError, match='needs a model with metric'):
        ClassPromptMappingHook(by_epoch=True, refresh=False).before_train(
            runner)


def test_schedule_without_refresh_in_the_run_is_logged():
    assert [first_refresh(i, b) for i, b in ((4, 0), (4, 5), (1, 3),
                                             (1000, 0))] == [3, 7, 3, 999]
    log, lines = logger()
    runner = SimpleNamespace(train_loop=loop(IterBasedTrainLoop),
                             logger=log, max_iters=300, model=None)
    for interval, warned in ((1000, True), (50, False)):
        lines.clear()
        with pytest.raises(TypeError):  # no model: stops after the checks
            ClassPromptMappingHook(interval=interval).before_train(runner)
        assert any('no mapping refresh within this run\'s 300 iterations'
                   in line for line in lines) == warned


def test_repeated_guided_layer_is_refused_at_build_time():
    with pytest.raises(ValueError, match=r'guided_layers names layer 2 '
                       r'twice \(\(2, -1\) on 3 layers\)'):
        build_model(Config(dict(model=segmentor(guided_layers=(2, -1)))))
    with pytest.raises(ValueError, match='name a layer twice'):
        build_model(Config(dict(model=dict(
            segmentor(), metric_guidance=dict(
                type='SegMetricGuidance', guided_layers=(1, 1))))))
    # out_indices keep mmseg's meaning: a repeat is allowed there
    assert normalise_layer_indices((2, -1), 3, 'out_indices') == (2, 2)


# ------------------------------------------------------ split files
def test_repeated_lines_in_split_files_are_counted(tmp_path):
    from mmseg_davpt.datasets.fgvc import read_split_json
    from mmseg_davpt.datasets.vtab1k import VTAB1k
    root = generate_cls_folders(str(tmp_path / 'vtab'), 'vtab', 2,
                                dict(train800=4, val200=2, test=2))
    path = osp.join(root, 'train800.txt')
    with open(path) as f:
        lines = f.read().splitlines()
    with open(path, 'w') as f:
        f.write('\n'.join(lines + lines[:2] + lines[:1]) + '\n')
    with pytest.warns(UserWarning, match=r'train800.txt: 3 of its 7 lines '
                      r'repeat an image listed before \(2 images appear more '
                      r"than once, e.g. '.*000000.jpg' as lines \[1, 5, 7\]"):
        dataset = VTAB1k(data_root=root, split='train800', num_classes=2)
        assert len(dataset) == 7  # used as they are, but not silently
    fgvc = tmp_path / 'train.json'
    fgvc.write_text('{"a.jpg": 1, "b.jpg": 0, "a.jpg": 2}')
    with pytest.warns(UserWarning, match=r'1 of its 3 keys repeat'):
        assert read_split_json(str(fgvc)) == {'a.jpg': 2, 'b.jpg': 0}
    assert warn_repeated_entries('x', ['a', 'b']) == 0


class Images:
    """A dataset stand-in with ``img_path`` per sample."""

    def __init__(self, *paths, data_root='data/x'):
        self.paths = paths
        self.data_root = data_root

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, i):
        return dict(img_path=self.paths[i])


def report_hook_runner(tmp_path, train, val, test, log, epochs=3):
    cfg = Config(dict(test_dataloader=dict(dataset=dict(data_root='t')),
                      test_evaluator=dict(type='Accuracy'),
                      train_dataloader=dict(dataset=dict(data_root='r')),
                      randomness=dict(seed=0)))
    return SimpleNamespace(
        train_loop=loop(EpochBasedTrainLoop), epoch=0, max_epochs=epochs,
        work_dir=str(tmp_path), logger=log, cfg=cfg,
        train_dataloader=SimpleNamespace(dataset=train),
        val_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=val)),
        build_dataloader=lambda cfg, seed=None: SimpleNamespace(dataset=test),
        build_evaluator=lambda cfg: SimpleNamespace(dataset_meta=None))


def test_test_images_in_the_training_split_are_reported(tmp_path):
    log, lines = logger()
    hook = ClsReportHook()
    hook.before_train(report_hook_runner(
        tmp_path, Images('a', 'b', 'c'), Images('v'), Images('c', 'b', 'd',
                                                             'e'), log))
    assert hook.test_overlap == ("2 of the 4 test images are also training "
                                 "images (e.g. 'b')")
    assert any('not measured on held-out images' in line for line in lines)
    report = summarise_epochs([dict(epoch=1, val=1.0, test=2.0)],
                              'accuracy/top1')
    report['test_overlap'] = hook.test_overlap
    assert 'warning: 2 of the 4 test images are also training images' in \
        '\n'.join(format_report(report))
    # val images that are test images: selecting on val selects on test
    _, why = ClsReportHook._check_val_split(Images('a'), Images('v', 'd'),
                                            Images('d', 'e'))
    assert why.startswith('1 of the 2 val images are also test images')
    # held-out splits: nothing reported
    hook = ClsReportHook()
    hook.before_train(report_hook_runner(tmp_path, Images('a'), Images('v'),
                                         Images('t'), log))
    assert hook.test_overlap is None and hook.selection_unavailable is None
    assert hook.run['max_epochs'] == 3
    assert shared_images(None, frozenset('a'), 'x', 'y') is None


def test_run_seeds_refuses_reports_of_different_runs(tmp_path, capsys):
    def report(epochs=100, root='data/dtd', digest='abc'):
        return dict(metric='accuracy/top1', final_epoch=epochs,
                    final_test=70.0, selected_epoch=None, selected_test=None,
                    selection_unavailable='x', best_test_epoch=epochs,
                    best_test=71.0, trained_epochs=epochs, splits={},
                    run=dict(config='c.py', max_epochs=epochs,
                             data_roots=dict(train=root),
                             config_digest=digest))

    def collect(reports):
        work = tmp_path / str(len(os.listdir(tmp_path)))
        for seed, r in reports.items():
            os.makedirs(work / f'seed_{seed}')
            with open(work / f'seed_{seed}' / 'davpt_report.json', 'w') as f:
                json.dump(r, f)
        code = run_seeds.main(['c.py', '--seeds', *map(str, reports),
                               '--work-dir', str(work), '--collect-only'])
        return code, capsys.readouterr()

    code, out = collect({0: report(), 1: report(epochs=50),
                         2: report(root='data/other')})
    assert code == 1
    for part in ('not runs of one experiment',
                 'trained_epochs: seed 0 100, seed 1 50, seed 2 100',
                 'run.max_epochs: seed 0 100, seed 1 50',
                 "run.data_roots: seed 0 {'train': 'data/dtd'}"):
        assert part in out.err
    code, out = collect({0: report(), 1: report(digest='other lr')})
    assert code == 1 and 'run.config_digest' in out.err
    code, out = collect({0: report(), 1: report()})
    assert code == 0 and 'mean (2)' in out.out
    # a train command can start over in the seed folders
    assert run_seeds.main(['c.py', '--seeds', '0', '--dry-run',
                           '--overwrite-work-dir']) == 0
    assert capsys.readouterr().out.rstrip().endswith('--overwrite-work-dir')


# ------------------------------------------------------ empty splits
@pytest.mark.slow
@pytest.mark.parametrize('tool, split', [('train', 'validation'),
                                         ('test', 'test')])
def test_empty_val_or_test_split_is_named(demo_data, tmp_path, tool, split):
    data_root, vit = demo_data
    empty = tmp_path / 'empty'
    for d in ('img_dir/val', 'ann_dir/val'):
        (empty / d).mkdir(parents=True)
    key = 'val' if tool == 'train' else 'test'
    options = [f'{key}_dataloader.dataset.data_root={empty}',
               f'train_dataloader.dataset.data_root={data_root}',
               'model.backbone.init_cfg=None']
    if tool == 'train':
        command = ['tools/train.py', VPT, '--work-dir', str(tmp_path / 'w')]
    else:
        ckpt = tmp_path / 'model.pth'
        import torch
        torch.save(build_model(Config.fromfile(VPT)).state_dict(), ckpt)
        command = ['tools/test.py', VPT, str(ckpt), '--work-dir',
                   str(tmp_path / 'w')]
    proc = subprocess.run([sys.executable, *command, '--cfg-options',
                           *options], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert f'the {split} split is empty: no images found for ' \
        f"DemoShapesDataset under data_root='{empty}'" in proc.stderr
    assert 'need at least one array' not in proc.stderr
