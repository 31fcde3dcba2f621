"""The sweep tool (mmseg_davpt.sweep, tools/sweep.py): grid expansion,
statistics, selection on val only, resume, refusal to pool runs whose
settings differ, and real in-process runs of a tiny config."""
import json
import math
import os.path as osp
import shutil

import pytest

from mmseg_davpt.sweep import (SettingsMismatchError, StaleRunError, Sweep,
                               SweepSpec, check_same_settings, expand_grid,
                               mean_std, paired_difference, point_name,
                               seed_overrides, select_point,
                               spec_from_config, t_interval)

from tests._helpers import ROOT
TINY = osp.join(ROOT, 'tests', 'configs', 'sweep_tiny_cls.py')
LR = 'optim_wrapper.optimizer.lr'
SPLIT = 'train_dataloader.dataset.split'


# ------------------------------------------------------------ grid / stats
def test_expand_grid_order_and_single_values():
    points = expand_grid({'a.lr': [1, 2], 'b.wd': [3, 4], 'c': 5})
    assert points == [{'a.lr': 1, 'b.wd': 3, 'c': 5},
                      {'a.lr': 1, 'b.wd': 4, 'c': 5},
                      {'a.lr': 2, 'b.wd': 3, 'c': 5},
                      {'a.lr': 2, 'b.wd': 4, 'c': 5}]
    assert expand_grid({}) == [{}]
    with pytest.raises(ValueError, match="'a.lr' has no values"):
        expand_grid({'a.lr': []})


def test_seed_overrides_fill_templates_and_set_the_runner_seed():
    opts = seed_overrides({'x.data_root': 'data/seed{seed}',
                           'y': ['a{seed}', 3]}, 7)
    assert opts == {'x.data_root': 'data/seed7', 'y': ['a7', 3],
                    'randomness.seed': 7}
    assert seed_overrides({'randomness.seed': '{seed}'}, 2) == \
        {'randomness.seed': 2}


def test_point_names_use_short_unique_keys():
    assert point_name({LR: 0.001, 'optim_wrapper.optimizer.weight_decay':
                       0.1}) == 'lr=0.001_weight_decay=0.1'
    assert point_name({'a.lr': 1, 'b.lr': 2}) == 'a.lr=1_b.lr=2'
    assert point_name({}) == 'default'


def test_statistics_against_hand_computation():
    stats = t_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sample var (2.25+.25+.25+2.25)/3 = 5/3, t_{.975,3}=3.182446
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert stats['n'] == 4 and stats['mean'] == 2.5
    assert stats['std'] == pytest.approx(math.sqrt(5 / 3))
    assert stats['low'] == pytest.approx(2.5 - half, abs=1e-5)
    assert stats['high'] == pytest.approx(2.5 + half, abs=1e-5)
    assert mean_std([5.0]) == dict(n=1, mean=5.0, std=None)
    assert t_interval([5.0])['low'] is None
    diff = paired_difference({0: 80., 1: 70., 2: 90., 3: 1.},
                             {0: 75., 1: 71., 2: 84.})
    assert diff['seeds'] == [0, 1, 2]
    assert diff['differences'] == {0: 5., 1: -1., 2: 6.}
    # mean 10/3; deviations 5/3, -13/3, 8/3 -> var (25+169+64)/9/2 = 43/3
    assert diff['mean'] == pytest.approx(10 / 3)
    assert diff['std'] == pytest.approx(math.sqrt(43 / 3))
    half = 4.302653 * math.sqrt(43 / 3) / math.sqrt(3)
    assert diff['high'] == pytest.approx(10 / 3 + half, abs=1e-4)


def test_selection_breaks_ties_towards_the_earlier_point():
    assert select_point([dict(mean=1.), dict(mean=3.), dict(mean=3.)]) == 1
    assert select_point([dict(mean=float('nan')), dict(mean=0.)]) == 1


# ------------------------------------------------ protocol, fake executor
class FakeExecutor:
    """Scores from a table ``{(lr, split): accuracy}``; records every call
    (the run's lr, training split, seed, scoring split)."""

    def __init__(self, table, fail_at=None):
        self.table, self.fail_at, self.calls = table, fail_at, []

    def __call__(self, cfg, split):
        self.calls.append((cfg.optim_wrapper.optimizer.lr,
                           cfg.train_dataloader.dataset.split,
                           cfg.randomness.seed, split))
        if self.fail_at == len(self.calls):
            # a run that dies after leaving files in its folder
            open(osp.join(cfg.work_dir, 'partial.log'), 'w').close()
            raise KeyboardInterrupt
        lr = cfg.optim_wrapper.optimizer.lr
        return {'accuracy/top1': self.table[(lr, split)] +
                cfg.randomness.seed}


# val prefers lr=0.1, test would prefer lr=0.01
TABLE = {(0.01, 'val'): 60., (0.1, 'val'): 80.,
         (0.01, 'test'): 90., (0.1, 'test'): 70.}


def spec(work_dir, **kwargs):
    return spec_from_config(TINY, str(work_dir), **kwargs)


def run(work_dir, executor, **kwargs):
    return Sweep(spec(work_dir, **kwargs), execute=executor).run()


def test_spec_defaults_come_from_the_config_sweep_dict(tmp_path):
    s = spec(tmp_path, final_options={'x': 1})
    assert s.seeds == [0, 1] and s.metric == 'accuracy/top1'
    assert s.grid == {LR: [1e-2, 1e-1]} and len(s.points) == 2
    assert s.final_options == {SPLIT: 'train800val200', 'x': 1}
    assert s.num_runs == (2 + 1) * 2
    assert spec(tmp_path, grid={LR: [1e-3]}).num_runs == 2  # no grid phase


def test_grid_is_chosen_on_val_and_the_final_run_trains_on_train_val(
        tmp_path):
    fake = FakeExecutor(TABLE)
    summary = run(tmp_path, fake)
    grid_calls, final_calls = fake.calls[:4], fake.calls[4:]
    assert all(c[1] == 'train800' and c[3] == 'val' for c in grid_calls)
    assert final_calls == [(0.1, 'train800val200', 0, 'test'),
                           (0.1, 'train800val200', 1, 'test')]
    assert summary['chosen'] == {LR: 0.1}
    assert summary['selected_on'] == 'val' and 'note' not in summary
    assert summary['test'] == {'0': 70., '1': 71.}
    assert summary['mean'] == 70.5 and summary['n'] == 2
    assert summary['std'] == pytest.approx(math.sqrt(0.5))
    assert [g['mean'] for g in summary['grid']] == [60.5, 80.5]
    with open(tmp_path / 'summary.json') as f:
        assert json.load(f)['chosen'] == {LR: 0.1}


def test_select_on_test_chooses_on_test_and_says_so(tmp_path):
    fake = FakeExecutor(TABLE)
    summary = run(tmp_path, fake, select_on_test=True)
    assert all(c[3] == 'test' for c in fake.calls)
    assert summary['chosen'] == {LR: 0.01}
    assert summary['selected_on'] == 'test'
    assert 'SELECTED ON THE TEST SPLIT' in summary['note']
    text = (tmp_path / 'summary.txt').read_text()
    assert 'SELECTED ON THE TEST SPLIT' in text and 'optimistic' in text


def test_resume_skips_finished_runs_and_redoes_a_killed_one(tmp_path,
                                                             capsys):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, FakeExecutor(TABLE, fail_at=3))
    killed = tmp_path / 'runs' / 'grid' / 'lr=0.1' / 'seed_0'
    assert (killed / 'partial.log').exists()
    assert not (killed / 'result.json').exists()
    fake = FakeExecutor(TABLE)
    first = run(tmp_path, fake)
    # runs 1-2 were finished; the killed run 3 and runs 4-6 are (re)done
    assert [c[:3] for c in fake.calls] == [
        (0.1, 'train800', 0), (0.1, 'train800', 1),
        (0.1, 'train800val200', 0), (0.1, 'train800val200', 1)]
    assert not (killed / 'partial.log').exists()  # cleared before redoing
    again = FakeExecutor(TABLE)
    assert run(tmp_path, again) == first and again.calls == []
    out = capsys.readouterr().out
    assert '[6/6] sweep_tiny_cls/final/lr=0.1/seed_1 ... test=71.0000 ' \
        '(finished before)' in out
    assert '[3/6] sweep_tiny_cls/grid/lr=0.1/seed_0 ... val=80.0000 (' in out
    assert 'ETA 00:00)' in out


def test_a_finished_run_with_other_settings_is_not_reused(tmp_path):
    run(tmp_path, FakeExecutor(TABLE))
    with pytest.raises(StaleRunError,
                       match='options.optim_wrapper.optimizer.weight_decay'):
        run(tmp_path, FakeExecutor(TABLE),
            cfg_options={'optim_wrapper.optimizer.weight_decay': 0.5})


def test_refuses_to_average_runs_that_differ_other_than_by_seed(tmp_path):
    base = {LR: 0.1, 'randomness.seed': 0, 'work_dir': 'a', 'x.root': 's0'}
    records = [dict(name='r0', resolved=base),
               dict(name='r1', resolved=dict(base, **{
                   'randomness.seed': 1, 'work_dir': 'b', 'x.root': 's1'}))]
    check_same_settings(records, ['x.root'])  # seed keys only: fine
    with pytest.raises(SettingsMismatchError, match='x.root'):
        check_same_settings(records, [])
    records[1]['resolved'][LR] = 0.2
    with pytest.raises(SettingsMismatchError,
                       match=r'r0 and r1: they differ in '
                       r'optim_wrapper\.optimizer\.lr \(0\.1 vs 0\.2\)'):
        check_same_settings(records, ['x.root'])


def test_a_config_edited_between_runs_is_refused_by_name(tmp_path):
    config = tmp_path / 'tiny.py'
    text = open(TINY).read().replace("'../../configs/", f"'{ROOT}/configs/")
    config.write_text(text)
    work = tmp_path / 'work'
    one_point = {LR: [0.1]}
    Sweep(SweepSpec(str(config), str(work), [0], grid=one_point,
                    final_options={SPLIT: 'train800val200'}),
          execute=FakeExecutor(TABLE)).run()
    config.write_text(text.replace('optimizer=dict(lr=1e-2)',
                                   'optimizer=dict(lr=1e-2, weight_decay=.5)'))
    with pytest.raises(SettingsMismatchError,
                       match=r'final/lr=0\.1/seed_0 and final/lr=0\.1/seed_1'
                       r': they differ in optim_wrapper\.optimizer\.'
                       r'weight_decay \(0\.01 vs 0\.5\)'):
        Sweep(SweepSpec(str(config), str(work), [0, 1], grid=one_point,
                        final_options={SPLIT: 'train800val200'}),
              execute=FakeExecutor(TABLE)).run()


def test_missing_metric_names_the_ones_there(tmp_path):
    with pytest.raises(KeyError, match=r"no metric 'mIoU'.*accuracy/top1"):
        run(tmp_path, FakeExecutor(TABLE), metric='mIoU')


# ------------------------------------------------------- real tiny runs
@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from mmseg_davpt.datasets.cls_demo import generate_cls_folders
    root = str(tmp_path_factory.mktemp('sweep') / 'data')
    return generate_cls_folders(root, num_classes=2, img_size=16,
                                per_split=dict(train800=8, val200=8, test=8))


def data_options(root):
    return [f'{k}={root}' for k in (
        'train_dataloader.dataset.data_root',
        'val_dataloader.dataset.data_root',
        'test_dataloader.dataset.data_root')]


@pytest.mark.slow
def test_tool_runs_in_process_resumes_and_leaves_no_state(
        tiny_data, tmp_path, monkeypatch):
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from tools.sweep import main
    builds = []
    original = Runner.from_cfg.__func__
    monkeypatch.setattr(Runner, 'from_cfg', classmethod(
        lambda cls, cfg: builds.append(cfg.work_dir) or original(cls, cfg)))
    scopes = dict(DefaultScope._instance_dict)
    loggers = dict(MMLogger._instance_dict)
    argv = [TINY, '--work-dir', str(tmp_path), '--seeds', '0',
            '--grid', f'{LR}=0.01,0.1', '--cfg-options',
            *data_options(tiny_data)]
    first = main(argv)
    assert len(builds) == 3  # two grid runs, one final run
    assert DefaultScope._instance_dict == scopes
    assert MMLogger._instance_dict == loggers
    final_dir = tmp_path / 'runs' / 'final' / point_name(first['chosen']) / \
        'seed_0'
    result = json.loads((final_dir / 'result.json').read_text())
    assert result['split'] == 'test'
    assert result['resolved'][SPLIT] == 'train800val200'
    assert 0 <= result['metrics']['accuracy/top1'] <= 100
    assert first['test'] == {'0': result['metrics']['accuracy/top1']}

    assert main(argv) == first and len(builds) == 3  # nothing redone
    # a run killed mid-way leaves its folder without result.json
    (final_dir / 'result.json').unlink()
    again = main(argv)
    assert builds[3:] == [str(final_dir)]
    # in-process runs repeat exactly: the state of earlier runs does not leak
    assert again['test'] == first['test']


@pytest.mark.slow
def test_parallel_sweeps_match_sequential_ones(tiny_data, tmp_path, capsys):
    from mmseg_davpt.sweep import run_sweeps
    options = dict(kv.split('=', 1) for kv in data_options(tiny_data))

    def specs(work):
        return [spec_from_config(TINY, str(tmp_path / work / str(lr)),
                                 seeds=[0], grid={LR: [lr]},
                                 cfg_options=options)
                for lr in (0.01, 0.1)]

    sequential = run_sweeps(specs('seq'), jobs=1)
    parallel = run_sweeps(specs('par'), jobs=2)
    assert [s['test'] for s in parallel] == [s['test'] for s in sequential]
    assert [s['chosen'] for s in parallel] == [{LR: 0.01}, {LR: 0.1}]
    out = capsys.readouterr().out
    assert out.count('[2/2] sweep_tiny_cls/final/') == 2  # both runs
