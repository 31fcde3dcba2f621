"""tools/train.py and tools/test.py end to end on the demo configs (tiny
ViT, generated data), through subprocesses exactly as a user runs them."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DAVPT = osp.join(ROOT, 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py')
VPT = osp.join(ROOT, 'configs/demo/vpt_setr_vit-tiny_shapes-64x64.py')


def data_options(data_root, vit):
    opts = [f'model.backbone.init_cfg.checkpoint={vit}']
    for split in ('train', 'val', 'test'):
        opts.append(f'{split}_dataloader.dataset.data_root={data_root}')
    return opts


def run_tool(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def train(work_dir, data, max_iters, *extra, config=DAVPT):
    return run_tool(
        'tools/train.py', config, '--work-dir', str(work_dir), *extra,
        '--cfg-options', *data_options(*data), f'train_cfg.max_iters={max_iters}',
        'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=3',
        'default_hooks.logger.interval=2', 'custom_hooks.0.interval=4'
        if config == DAVPT else 'randomness.seed=0')


def last_miou(log):
    found = re.findall(r'mIoU: ([0-9.]+)', log)
    assert found, log[-3000:]
    return float(found[-1])


@pytest.fixture(scope='module')
def davpt_run(demo_data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('davpt')
    log = train(work_dir, demo_data, 6)
    return work_dir, log


def test_davpt_train_logs_metric_losses_and_miou(davpt_run):
    work_dir, log = davpt_run
    assert 'DA-VPT: collecting class features over 3 training batches' in log
    assert 'DA-VPT: initial mapping (iter 0)' in log
    assert 'DA-VPT: mapping refreshed (iter 3)' in log
    losses = re.findall(r'davpt\.loss_prompt: ([0-9.naif-]+)\s+'
                        r'davpt\.loss_cls: ([0-9.naif-]+)', log)
    assert len(losses) == 3  # logged every 2 of 6 iterations
    for prompt, cls in losses:
        assert torch.isfinite(torch.tensor([float(prompt), float(cls)])).all()
    assert 'decode.loss_ce' in log
    assert 0. <= last_miou(log) <= 100.
    assert 'DA-VPT: prompt -> classes: 0: ' in log
    import json
    with open(osp.join(work_dir, 'davpt_mapping_history.jsonl')) as f:
        history = [json.loads(line) for line in f]
    assert [h['iter'] for h in history] == [0, 3]  # initial + 1 refresh
    named = sorted(n for names in history[-1]['prompts'].values()
                   for n in names)
    assert named == ['disc', 'ring', 'square', 'triangle']
    ckpt = torch.load(osp.join(work_dir, 'iter_6.pth'), weights_only=False)
    mapping = ckpt['state_dict']['metric_guidance.mapping.class_to_prompt']
    # background (class 0) never gets a prompt; the 4 shapes share 3 prompts
    assert mapping[0] == -1 and set(mapping[1:].tolist()) <= {0, 1, 2}


def test_resume_restores_mapping_and_continues(davpt_run, demo_data):
    work_dir, _ = davpt_run
    saved = torch.load(osp.join(work_dir, 'iter_6.pth'), weights_only=False)
    log = train(work_dir, demo_data, 9, '--resume')
    assert 'resumed' in log.lower()
    assert 'class -> prompt mapping restored from the checkpoint' in log
    assert 'collecting class features' not in log
    assert re.search(r'Iter\(train\) \[8/9\]', log)
    assert not re.search(r'Iter\(train\) \[2/9\]', log)
    resumed = torch.load(osp.join(work_dir, 'iter_9.pth'), weights_only=False)
    assert resumed['meta']['iter'] == 9
    # frozen weights identical across the whole run, prompts moved
    for key, value in saved['state_dict'].items():
        if key.startswith('backbone.layers.'):
            assert torch.equal(value, resumed['state_dict'][key]), key
    assert not torch.equal(saved['state_dict']['backbone.prompts.3'],
                           resumed['state_dict']['backbone.prompts.3'])


def test_test_tool_single_scale_tta_and_show_dir(davpt_run, demo_data):
    work_dir, _ = davpt_run
    ckpt = osp.join(work_dir, 'iter_6.pth')
    opts = ['--cfg-options', *data_options(*demo_data)]
    ss = run_tool('tools/test.py', DAVPT, ckpt, '--work-dir',
                  str(work_dir / 'ss'), '--show-dir', 'vis', *opts)
    ms = run_tool('tools/test.py', DAVPT, ckpt, '--work-dir',
                  str(work_dir / 'ms'), '--tta', *opts)
    assert 0. <= last_miou(ss) <= 100. and 0. <= last_miou(ms) <= 100.
    pngs = [f for _, _, files in os.walk(work_dir / 'ss') for f in files
            if f.endswith('.png')]
    assert len(pngs) == 6  # one painted prediction per val image


def test_vpt_baseline_trains_without_metric_terms(demo_data, tmp_path):
    log = train(tmp_path, demo_data, 3, config=VPT)
    assert 'decode.loss_ce' in log and 'davpt.' not in log
    assert 'Optimizer gets' in log and 'frozen tensors' in log


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', DAVPT, str(tmp_path / 'none.pth')],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'no checkpoint at' in proc.stderr


def test_two_process_cpu_dist_train_keeps_mappings_identical(demo_data,
                                                             tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(port),
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ['PATH'])
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', DAVPT, '2', '--work-dir',
         str(tmp_path), '--cfg-options', *data_options(*demo_data),
         'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
         'custom_hooks.0.interval=3', 'default_hooks.logger.interval=3'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # initial mapping + refreshes at iterations 3 and 6, each checked by an
    # all_gather of the mapping over both ranks
    assert log.count('identical on all 2 ranks') == 3
    assert 'davpt.loss_prompt' in log and last_miou(log) >= 0.


# Argument handling, in-process (no training): what each flag does to the
# config the runner receives.

def test_train_resume_auto_path_and_missing(tmp_path):
    from tools import train
    auto = train.build_config(train.parse_args([VPT, '--resume']))
    assert auto.resume is True and auto.load_from is None
    assert auto.work_dir == './work_dirs/vpt_setr_vit-tiny_shapes-64x64'
    ckpt = tmp_path / 'iter_6.pth'
    ckpt.write_bytes(b'')
    given = train.build_config(train.parse_args(
        [VPT, '--resume', str(ckpt), '--work-dir', str(tmp_path)]))
    assert given.resume is True and given.load_from == str(ckpt)
    assert given.work_dir == str(tmp_path)
    with pytest.raises(FileNotFoundError, match='--resume: no checkpoint'):
        train.build_config(train.parse_args(
            [VPT, '--resume', str(tmp_path / 'none.pth')]))
    plain = train.build_config(train.parse_args([VPT]))
    assert plain.resume is False


def test_train_amp_switches_optim_wrapper(monkeypatch):
    from tools import train
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = train.build_config(train.parse_args([VPT, '--amp']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    # the trainable-parameters constructor survives the switch
    assert cfg.optim_wrapper.constructor == \
        'TrainableParamsOptimWrapperConstructor'
    with pytest.raises(ValueError, match='needs optim_wrapper.type'):
        train.build_config(train.parse_args(
            [VPT, '--amp', '--cfg-options',
             'optim_wrapper.type=ApexOptimWrapper']))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit, match='CUDA'):
        train.build_config(train.parse_args([VPT, '--amp']))


def test_test_tta_out_and_show_dir_config(tmp_path):
    from tools import test
    ckpt = tmp_path / 'iter_6.pth'
    ckpt.write_bytes(b'')
    cfg = test.build_config(test.parse_args(
        [VPT, str(ckpt), '--tta', '--out', str(tmp_path / 'pred'),
         '--show-dir', 'vis', '--work-dir', str(tmp_path)]))
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.type == 'DAVPTEncoderDecoder'
    assert cfg.model.module.backbone.init_cfg is None  # weights from ckpt
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'pred')
    assert cfg.test_evaluator.keep_results is True
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 'vis')
    assert cfg.load_from == str(ckpt)


def test_test_tta_needs_tta_pipeline(tmp_path):
    from tools import test
    ckpt = tmp_path / 'iter_6.pth'
    ckpt.write_bytes(b'')
    no_tta = tmp_path / 'no_tta.py'
    # a standalone copy of the VPT demo config without the TTA entries
    from mmengine.config import Config
    cfg = Config.fromfile(VPT)
    cfg.pop('tta_pipeline')
    cfg.dump(str(no_tta))
    with pytest.raises(KeyError, match='--tta needs'):
        test.build_config(test.parse_args([str(no_tta), str(ckpt), '--tta']))
    plain = test.build_config(test.parse_args([str(no_tta), str(ckpt)]))
    assert plain.model.type == 'DAVPTEncoderDecoder'


def test_empty_training_split_is_a_clear_error(tmp_path):
    empty = tmp_path / 'empty'
    for d in ('img_dir/train', 'ann_dir/train', 'img_dir/val',
              'ann_dir/val'):
        (empty / d).mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', VPT, '--work-dir',
         str(tmp_path / 'wd'), '--cfg-options',
         f'train_dataloader.dataset.data_root={empty}',
         'model.backbone.init_cfg=None'],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'the training split is empty' in proc.stderr
