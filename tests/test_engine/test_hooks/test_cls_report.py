"""The classification reporting protocol: ``ClsReportHook`` on a tiny
training run (report vs per-epoch table vs log vs ``tools/test.py``; the
hook leaves training bit-identical; ``--resume`` keeps the table), the
selection rules on a hand-made table with ties, and ``tools/run_seeds.py``'s
aggregation."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip('mmpretrain')

from mmseg_davpt.datasets import generate_cls_folders  # noqa: E402
from mmseg_davpt.engine.hooks.cls_report_hook import \
    ClsReportHook  # noqa: E402
from mmseg_davpt.utils.cls_report import (format_report,  # noqa: E402
                                          summarise_epochs)
from tests._helpers import ROOT, run_main  # noqa: E402
from tools import run_seeds  # noqa: E402
from tools.test import main as evaluate  # noqa: E402
from tools.train import main as train_main  # noqa: E402

DEMO = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')
EPOCHS = 3


# ------------------------------------------------------ selection rules
# Hand-made table: val ties at epochs 20 and 30 (-> 20), test ties at 30
# and 40 (-> 30); given out of order.
TABLE = [
    dict(epoch=30, val=70.0, test=60.0),
    dict(epoch=10, val=50.0, test=40.0),
    dict(epoch=50, val=60.0, test=55.0),
    dict(epoch=20, val=70.0, test=45.0),
    dict(epoch=40, val=65.0, test=60.0),
]


def test_selection_rules_on_a_table_with_ties():
    report = summarise_epochs(TABLE)
    assert (report['final_epoch'], report['final_test']) == (50, 55.0)
    # (b): highest val 70 at epochs 20 and 30 -> the earliest, 20
    assert (report['selected_epoch'], report['selected_val'],
            report['selected_test']) == (20, 70.0, 45.0)
    # (c): highest test 60 at epochs 30 and 40 -> the earliest, 30
    assert (report['best_test_epoch'], report['best_test']) == (30, 60.0)
    assert 'OPTIMISTIC' in report['best_test_note']
    assert 'earliest' in report['selection_rule']
    assert [r['epoch'] for r in report['epochs']] == [10, 20, 30, 40, 50]
    lines = format_report(report)
    assert lines[1] == '  (a) final epoch 50: 55.00'
    assert lines[2].startswith('  (b) selected on val (epoch 20, val 70.00')
    assert lines[2].endswith(': 45.00')
    assert lines[3].startswith('  (c) best test epoch 30: 60.00  [OPTIMISTIC')


def test_selection_unavailable_reports_a_and_c_only():
    rows = [dict(r, val=None) for r in TABLE]
    report = summarise_epochs(rows, selection_unavailable='no val split')
    assert report['selected_epoch'] is None
    assert report['selected_test'] is None
    assert (report['final_test'], report['best_test']) == (55.0, 60.0)
    assert format_report(report)[2] == \
        '  (b) selected on val: not available: no val split'
    with pytest.raises(ValueError, match='no val value'):
        summarise_epochs(rows)
    with pytest.raises(ValueError, match='no evaluated epochs'):
        summarise_epochs([])


class Images:
    """A dataset stand-in with ``img_path`` per sample."""

    def __init__(self, *paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, i):
        return dict(img_path=self.paths[i])


def test_val_split_checks():
    check = ClsReportHook._check_val_split
    train, val, test = Images('a', 'b'), Images('c'), Images('d', 'e')
    assert check(train, val, test) == (False, None)
    # the final protocol: validate on the test split
    is_test, why = check(train, Images('e', 'd'), test)
    assert is_test and 'val split is the test split' in why
    # train800val200 with val200: val images are training images
    is_test, why = check(Images('a', 'c'), val, test)
    assert not is_test and '1 of the 1 val images are also training' in why


def test_unknown_metric_key_is_a_clear_error():
    with pytest.raises(KeyError, match=r"'accuracy/top1' not in the val "
                       r"metrics \['accuracy/top5'\]"):
        ClsReportHook()._value({'accuracy/top5': 1.0}, 'val')


# ------------------------------------------------------------ tiny runs
def run(args):
    """``python tools/<train|test>.py ...`` as ``main(argv)`` in this
    process; returns the log the run wrote to its ``--work-dir``."""
    tool, *argv = args
    main = {'tools/train.py': train_main, 'tools/test.py': evaluate}[tool]
    return run_main(main, argv, argv[argv.index('--work-dir') + 1])


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, demo_data):
    """Data, options of the selection protocol (train800 / val200 /
    test), and a 3-epoch run validated every epoch."""
    root = tmp_path_factory.mktemp('cls_report')
    data = generate_cls_folders(str(root / 'data'), 'vtab', num_classes=6,
                                per_split=dict(train800=36, val200=12,
                                               test=24))
    vit = osp.join(osp.dirname(demo_data[1]), 'vit_timm.pth')
    opts = [f'model.backbone.init_cfg.checkpoint={vit}',
            f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=5',
            'train_dataloader.dataset.split=train800',
            'val_dataloader.dataset.split=val200']
    opts += [f'{s}_dataloader.dataset.data_root={data}'
             for s in ('train', 'val', 'test')]
    work = str(root / 'run')
    log = run(['tools/train.py', DEMO, '--work-dir', work,
               '--cfg-options', *opts])
    with open(osp.join(work, 'davpt_report.json')) as f:
        report = json.load(f)
    return dict(root=root, opts=opts, work=work, log=log, report=report)


@pytest.mark.slow
def test_report_numbers_follow_the_per_epoch_table(tiny):
    report = tiny['report']
    table = report['epochs']
    assert [r['epoch'] for r in table] == list(range(1, EPOCHS + 1))
    val = np.array([r['val'] for r in table])
    test = np.array([r['test'] for r in table])
    assert report['final_epoch'] == EPOCHS == report['trained_epochs']
    assert report['final_test'] == test[-1]
    # np.argmax returns the first maximum: the earliest-epoch tie rule
    assert report['selected_epoch'] == table[int(np.argmax(val))]['epoch']
    assert report['selected_test'] == test[int(np.argmax(val))]
    assert report['best_test'] == test.max()
    assert report['best_test_epoch'] == table[int(np.argmax(test))]['epoch']
    assert report['selection_unavailable'] is None
    assert 'split=val200' in report['splits']['val']
    assert 'split=test' in report['splits']['test']


@pytest.mark.slow
def test_report_matches_the_log(tiny):
    log, table = tiny['log'], tiny['report']['epochs']
    # mmengine's own val-loop lines give the val column independently
    val_log = [float(v) for v in re.findall(
        r'Epoch\(val\) \[\d+\]\[\d+/\d+\]\s+accuracy/top1: ([0-9.]+)', log)]
    assert val_log == pytest.approx([r['val'] for r in table], abs=1e-3)
    lines = re.findall(r'ClsReportHook: epoch (\d+): val accuracy/top1 '
                       r'([0-9.]+), test accuracy/top1 ([0-9.]+)', log)
    assert [(int(e), float(v), float(t)) for e, v, t in lines] == [
        (r['epoch'], round(r['val'], 2), round(r['test'], 2))
        for r in table]
    report = tiny['report']
    assert f'(a) final epoch {EPOCHS}: {report["final_test"]:.2f}' in log
    assert (f'(b) selected on val (epoch {report["selected_epoch"]}, '
            f'val {report["selected_val"]:.2f}') in log
    assert (f'(c) best test epoch {report["best_test_epoch"]}: '
            f'{report["best_test"]:.2f}  [OPTIMISTIC') in log


@pytest.mark.slow
def test_test_column_equals_the_test_tool(tiny):
    """The hook's test number of the last epoch is what tools/test.py
    gives for the last checkpoint on the test split."""
    log = run(['tools/test.py', DEMO, osp.join(tiny['work'],
                                               f'epoch_{EPOCHS}.pth'),
               '--work-dir', str(tiny['root'] / 'test'),
               '--cfg-options', *tiny['opts']])
    top1 = float(re.findall(r'accuracy/top1: ([0-9.]+)', log)[-1])
    assert top1 == pytest.approx(tiny['report']['final_test'], abs=1e-3)


@pytest.mark.slow
def test_the_hook_leaves_training_bit_identical(tiny):
    """Scoring the test split draws no random numbers from the training's
    streams: a run without the hook ends with the same weights."""
    config = tiny['root'] / 'no_report.py'
    # how a config drops the hook (mmengine only lets its own default
    # hooks be set to None)
    config.write_text(
        f"_base_ = '{DEMO}'\n"
        'default_hooks = dict(\n'
        '    _delete_=True,\n'
        '    **{k: v for k, v in _base_.default_hooks.items()\n'
        "       if k != 'report'})\n")
    work = str(tiny['root'] / 'no_report')
    log = run(['tools/train.py', str(config), '--work-dir', work,
               '--cfg-options', *tiny['opts']])
    assert 'ClsReportHook' not in log
    assert not osp.exists(osp.join(work, 'davpt_report.json'))
    ckpt = f'epoch_{EPOCHS}.pth'
    with_hook = torch.load(osp.join(tiny['work'], ckpt), map_location='cpu',
                           weights_only=False)['state_dict']
    without = torch.load(osp.join(work, ckpt), map_location='cpu',
                         weights_only=False)['state_dict']
    assert with_hook.keys() == without.keys()
    for key in with_hook:
        assert torch.equal(with_hook[key], without[key]), key


@pytest.mark.slow
def test_resume_keeps_the_per_epoch_table(tiny):
    """In the original work dir the table continues where it stopped."""
    work = str(tiny['root'] / 'resumed')
    shutil.copytree(tiny['work'], work)
    run(['tools/train.py', DEMO, '--work-dir', work, '--resume',
         osp.join(work, f'epoch_{EPOCHS}.pth'), '--cfg-options',
         *tiny['opts'], f'train_cfg.max_epochs={EPOCHS + 1}'])
    with open(osp.join(work, 'davpt_report.json')) as f:
        resumed = json.load(f)
    assert resumed['epochs'][:EPOCHS] == tiny['report']['epochs']
    assert [r['epoch'] for r in resumed['epochs']] == \
        list(range(1, EPOCHS + 2))
    assert resumed['final_epoch'] == EPOCHS + 1 and resumed['finished']


@pytest.mark.slow
def test_resume_elsewhere_keeps_the_table_stored_in_the_checkpoint(tiny):
    """With only the checkpoint, the table is the one stored in it: the
    epochs validated before it was saved (epoch E is validated after its
    checkpoint), and the log says which epoch is missing."""
    work = tiny['root'] / 'resumed_elsewhere'
    work.mkdir()
    ckpt = str(work / f'epoch_{EPOCHS}.pth')
    shutil.copy(osp.join(tiny['work'], f'epoch_{EPOCHS}.pth'), ckpt)
    log = run(['tools/train.py', DEMO, '--work-dir', str(work), '--resume',
               ckpt, '--cfg-options', *tiny['opts'],
               f'train_cfg.max_epochs={EPOCHS + 1}'])
    assert f'the scores of epoch {EPOCHS} are neither in the checkpoint' \
        in log
    with open(work / 'davpt_report.json') as f:
        resumed = json.load(f)
    assert resumed['epochs'][:EPOCHS - 1] == \
        tiny['report']['epochs'][:EPOCHS - 1]
    assert [r['epoch'] for r in resumed['epochs']] == \
        list(range(1, EPOCHS)) + [EPOCHS + 1]


# ------------------------------------------------------------- run_seeds
def fake_report(final, selected, best, reason=None):
    return dict(metric='accuracy/top1', final_epoch=100, final_test=final,
                selected_epoch=None if selected is None else 60,
                selected_test=selected, selection_unavailable=reason,
                best_test_epoch=80, best_test=best)


def write_reports(work_dir, reports):
    for seed, report in reports.items():
        folder = osp.join(work_dir, f'seed_{seed}')
        os.makedirs(folder)
        with open(osp.join(folder, 'davpt_report.json'), 'w') as f:
            json.dump(report, f)


def test_run_seeds_aggregates_mean_and_sample_std(tmp_path, capsys):
    values = {0: (71.0, 72.5, 74.0), 3: (70.0, 73.0, 75.5),
              7: (72.5, 71.0, 74.0)}
    write_reports(str(tmp_path), {s: fake_report(*v)
                                  for s, v in values.items()})
    reports = run_seeds.load_reports(str(tmp_path), [0, 3, 7])
    stats = run_seeds.aggregate(reports)
    for i, key in enumerate(('final_test', 'selected_test', 'best_test')):
        column = np.array([v[i] for v in values.values()])
        assert stats[key]['n'] == 3
        assert stats[key]['mean'] == pytest.approx(column.mean())
        assert stats[key]['std'] == pytest.approx(column.std(ddof=1))
    assert run_seeds.main(['cfg.py', '--seeds', '0', '3', '7', '--work-dir',
                           str(tmp_path), '--collect-only']) == 0
    out = capsys.readouterr().out
    mean = np.mean([v[0] for v in values.values()])
    std = np.std([v[0] for v in values.values()], ddof=1)
    assert f'{mean:.2f} +- {std:.2f}' in out
    assert 'optimistic' in out
    with open(tmp_path / 'seeds_summary.json') as f:
        assert json.load(f)['summary']['best_test']['n'] == 3


def test_run_seeds_one_seed_and_missing_selection(tmp_path, capsys):
    write_reports(str(tmp_path), {
        0: fake_report(60.0, None, 62.0, reason='the val split is the test '
                       'split')})
    stats = run_seeds.aggregate(run_seeds.load_reports(str(tmp_path), [0]))
    assert stats['final_test'] == dict(n=1, mean=60.0, std=None)
    assert stats['selected_test'] == dict(n=0, mean=None, std=None)
    assert run_seeds.main(['cfg.py', '--seeds', '0', '--work-dir',
                           str(tmp_path), '--collect-only']) == 0
    out = capsys.readouterr().out
    assert '60.00 std n/a' in out
    assert '(b) n/a: the val split is the test split' in out
    # a seed without a report is an error naming the file
    assert run_seeds.main(['cfg.py', '--seeds', '0', '1', '--work-dir',
                           str(tmp_path), '--collect-only']) == 1
    assert 'seed_1/davpt_report.json not found' in capsys.readouterr().err
    # a partial report (a run that did not finish) is refused
    with open(tmp_path / 'seed_0' / 'davpt_report.json', 'w') as f:
        json.dump(dict(fake_report(60.0, None, 62.0), finished=False,
                       trained_epochs=40), f)
    assert run_seeds.main(['cfg.py', '--seeds', '0', '--work-dir',
                           str(tmp_path), '--collect-only']) == 1
    assert 'is partial (the run stopped after epoch 40)' in \
        capsys.readouterr().err


def test_run_seeds_dry_run_prints_one_train_command_per_seed(tmp_path,
                                                             capsys):
    assert run_seeds.main(['configs/x.py', '--seeds', '1', '2', '--work-dir',
                           str(tmp_path), '--dry-run', '--cfg-options',
                           'optim_wrapper.optimizer.lr=0.01']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for seed, line in zip((1, 2), lines):
        assert 'tools/train.py configs/x.py' in line
        assert f'--work-dir {tmp_path}/seed_{seed}' in line
        # the user's options, then the seed
        assert line.endswith(f'--cfg-options optim_wrapper.optimizer.lr=0.01 '
                             f'randomness.seed={seed}')
    assert not os.listdir(tmp_path)  # nothing ran
