"""tools/train.py and tools/test.py end to end on the demo configs (tiny
ViT, generated data): trainings and evaluations call each tool's
``main(argv)`` and read the log it writes; a subprocess where the command
line itself is checked (exit status, launch script)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from tests._helpers import (CLS_DEMO, DAVPT, ROOT, VPT, data_options,
                            free_port, last_miou, run_main, tool_env)
from tools.test import main as evaluate
from tools.train import main as train_main


def train(work_dir, data, max_iters, *extra, config=DAVPT):
    return run_main(train_main, [
        config, '--work-dir', work_dir, *extra,
        '--cfg-options', *data_options(*data),
        f'train_cfg.max_iters={max_iters}',
        'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=3',
        'default_hooks.logger.interval=2', 'custom_hooks.0.interval=4'
        if config == DAVPT else 'randomness.seed=0'], work_dir)


@pytest.fixture(scope='module')
def davpt_run(demo_data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('davpt')
    log = train(work_dir, demo_data, 6)
    return work_dir, log


@pytest.mark.slow
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
    # the seeded demo run gives 11.90 after 6 iterations
    assert last_miou(log) >= 10.
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


@pytest.mark.slow
def test_resume_restores_mapping_and_continues(davpt_run, demo_data):
    work_dir, _ = davpt_run
    saved = torch.load(osp.join(work_dir, 'iter_6.pth'), weights_only=False)
    log = train(work_dir, demo_data, 9, '--resume')
    assert 'resumed' in log.lower()
    assert 'class -> prompt mapping restored from the checkpoint' in log
    assert 'collecting class features' not in log
    assert re.search(r'Iter\(train\) \[8/9\]', log)
    # 17.25 after 9 iterations (11.90 after 6): training went on
    assert last_miou(log) >= 15.
    assert not re.search(r'Iter\(train\) \[2/9\]', log)
    resumed = torch.load(osp.join(work_dir, 'iter_9.pth'), weights_only=False)
    assert resumed['meta']['iter'] == 9
    # frozen weights identical across the whole run, prompts moved
    for key, value in saved['state_dict'].items():
        if key.startswith('backbone.layers.'):
            assert torch.equal(value, resumed['state_dict'][key]), key
    assert not torch.equal(saved['state_dict']['backbone.prompts.3'],
                           resumed['state_dict']['backbone.prompts.3'])


@pytest.mark.slow
def test_test_tool_single_scale_tta_and_show_dir(davpt_run, demo_data):
    work_dir, train_log = davpt_run
    ckpt = osp.join(work_dir, 'iter_6.pth')
    opts = ['--cfg-options', *data_options(*demo_data)]
    ss = run_main(evaluate, [DAVPT, ckpt, '--work-dir', work_dir / 'ss',
                              '--show-dir', 'vis', *opts], work_dir / 'ss')
    ms = run_main(evaluate, [DAVPT, ckpt, '--work-dir', work_dir / 'ms',
                              '--tta', *opts], work_dir / 'ms')
    # single scale: the training's own validation of the same checkpoint;
    # TTA: 13.73 on the seeded demo run
    assert last_miou(ss) == last_miou(train_log)
    assert last_miou(ms) >= 12.
    pngs = [f for _, _, files in os.walk(work_dir / 'ss') for f in files
            if f.endswith('.png')]
    assert len(pngs) == 6  # one painted prediction per val image


@pytest.mark.slow
def test_vpt_baseline_trains_without_metric_terms(demo_data, tmp_path):
    log = train(tmp_path, demo_data, 3, config=VPT)
    assert 'decode.loss_ce' in log and 'davpt.' not in log
    assert 'Optimizer gets' in log and 'frozen tensors' in log


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint at'):
        evaluate([DAVPT, str(tmp_path / 'none.pth')])


@pytest.mark.slow
def test_two_process_cpu_dist_train_keeps_mappings_identical(demo_data,
                                                             tmp_path):
    env = tool_env(1, PORT=free_port())
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
    # 12.46 on the seeded 2-rank demo run
    assert 'davpt.loss_prompt' in log and last_miou(log) >= 10.


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
    assert cfg.load_from is None  # main() loads the checkpoint, strictly


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


@pytest.mark.slow
def test_empty_training_split_is_a_clear_error(tmp_path):
    empty = tmp_path / 'empty'
    for d in ('img_dir/train', 'ann_dir/train', 'img_dir/val',
              'ann_dir/val'):
        (empty / d).mkdir(parents=True)
    with pytest.raises(SystemExit, match='the training split is empty'):
        train_main([VPT, '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={empty}',
                    'model.backbone.init_cfg=None'])


@pytest.mark.slow
def test_train_log_has_one_init_line_not_one_per_parameter(davpt_run):
    """mmengine's ``init_weights`` dump (an entry per parameter, ~500 KB for
    a ViT-L) is replaced by one summary line in the run's log file."""
    import glob
    work_dir, _ = davpt_run
    logs = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    assert logs
    text = open(sorted(logs)[0]).read()
    assert len(re.findall(r'DAVPTEncoderDecoder\.init_weights: \d+ of \d+ '
                          r'parameter tensors', text)) == 1
    assert 'Name of parameter - Initialization information' not in text
    assert 'Initialized by user-defined' not in text
    assert 'The value is the same before and after' not in text
    assert not re.search(r'^\S+ - torch\.Size\(', text, re.MULTILINE)


# tools/test.py loads strictly: a checkpoint that does not fit the config
# stops with the keys that differ (the runner's non-strict load_from left
# them random and printed an mIoU).

@pytest.fixture(scope='module')
def cls_checkpoint(tmp_path_factory):
    """A classification demo model's state dict, saved as a checkpoint."""
    from mmseg_davpt.utils.config import load_config
    from mmseg_davpt.utils.model import build_model
    cfg = load_config(CLS_DEMO, {'model.backbone.init_cfg': None})
    path = str(tmp_path_factory.mktemp('cls') / 'cls.pth')
    torch.save(dict(state_dict=build_model(cfg).state_dict()), path)
    return path


def run_test_tool(config, checkpoint, data, tmp_path, *options):
    from tools import test
    test.main([config, checkpoint, '--work-dir', str(tmp_path),
               '--cfg-options', *data_options(*data), *options])


@pytest.mark.slow
def test_test_tool_refuses_backbone_only_file(demo_data, tmp_path):
    from mmseg_davpt.apis import CheckpointMismatchError
    _, vit = demo_data
    with pytest.raises(CheckpointMismatchError) as err:
        run_test_tool(DAVPT, vit, demo_data, tmp_path)
    msg = str(err.value)
    assert f'{vit} does not match the model built from the config' in msg
    assert 'looks like the weights of a backbone alone' in msg
    # the ViT's keys lack the 'backbone.' prefix: all of the model's are
    # missing, all of the file's unknown
    assert re.search(r'missing from the checkpoint \(\d+ keys: '
                     r'auxiliary_head \d+, backbone \d+, decode_head \d+', msg)
    assert re.search(r'not in the model \(\d+ keys: cls_token 1, layers \d+, '
                     r'ln1 2, patch_embed 2, pos_embed 1\): .*'
                     r'layers\.\{0-3\}\.', msg)
    # the command line stops non-zero with the same message
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', DAVPT, vit, '--work-dir',
         str(tmp_path / 'cli')], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode != 0 and 'CheckpointMismatchError' in proc.stderr
    assert not re.search(r'mIoU: [0-9.]+', proc.stdout + proc.stderr)


@pytest.mark.slow
@pytest.mark.parametrize('option, expected', [
    ('model.backbone.num_prompts=8',
     r'backbone\.prompts\.\{0-2\}: checkpoint \(4, 96\), model \(8, 96\)'),
    ('model.decode_head.num_classes=6',
     r'decode_head\.conv_seg\.weight: checkpoint \(5, 32, 1, 1\), model '
     r'\(6, 32, 1, 1\)'),
])
def test_test_tool_refuses_changed_settings(davpt_run, demo_data, tmp_path,
                                            option, expected):
    from mmseg_davpt.apis import CheckpointMismatchError
    work_dir, _ = davpt_run
    with pytest.raises(CheckpointMismatchError,
                       match=r'different shapes') as err:
        run_test_tool(DAVPT, str(work_dir / 'iter_6.pth'), demo_data,
                      tmp_path, option)
    assert re.search(expected, str(err.value)), str(err.value)


@pytest.mark.slow
def test_test_tool_refuses_checkpoint_of_the_other_task(
        davpt_run, demo_data, cls_checkpoint, tmp_path):
    from mmseg_davpt.apis import CheckpointMismatchError
    work_dir, _ = davpt_run
    # a classification checkpoint with a segmentation config
    with pytest.raises(CheckpointMismatchError) as err:
        run_test_tool(DAVPT, cls_checkpoint, demo_data, tmp_path / 'seg')
    msg = str(err.value)
    assert re.search(r'missing from the checkpoint \(\d+ keys: '
                     r'auxiliary_head \d+, decode_head \d+;', msg)
    assert re.search(r'not in the model .*head\.fc\.weight', msg)
    # a segmentation checkpoint with a classification (mmpretrain) config
    from tools import test
    with pytest.raises(CheckpointMismatchError) as err:
        test.main([CLS_DEMO, str(work_dir / 'iter_6.pth'), '--work-dir',
                   str(tmp_path / 'cls')])
    assert re.search(r'not in the model \(\d+ keys: auxiliary_head \d+, '
                     r'decode_head \d+\)', str(err.value))


# Resuming: checked against the built model before mmengine resumes.

def resume(config, checkpoint, data, work_dir, *options):
    from tools import train
    train.main([config, '--resume', checkpoint, '--work-dir', str(work_dir),
                '--cfg-options', *data_options(*data), *options])


@pytest.mark.slow
def test_resume_from_peft_file_is_a_clear_error(davpt_run, demo_data,
                                                tmp_path):
    from tools.export_peft import main as export_peft
    work_dir, _ = davpt_run
    _, vit = demo_data
    peft = str(tmp_path / 'peft.pth')
    export_peft([DAVPT, str(work_dir / 'iter_6.pth'), peft, '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={vit}'])
    with pytest.raises(ValueError, match=r'--resume: .*peft\.pth is a PEFT '
                       r'checkpoint .* cannot resume from it'):
        resume(DAVPT, peft, demo_data, tmp_path / 'wd')
    # weights without training state (here: the pretrained ViT)
    with pytest.raises(ValueError, match=r'holds no training state '
                       r'\(meta, state_dict, message_hub missing\)'):
        resume(DAVPT, vit, demo_data, tmp_path / 'wd')


@pytest.mark.slow
@pytest.mark.parametrize('option, expected', [
    ('model.backbone.num_prompts=8',
     r'different shapes .*backbone\.prompts\.\{0-2\}: checkpoint \(4, 96\), '
     r'model \(8, 96\)'),
    ('model.backbone.tune_params=kv',
     r'optimizer state in .*iter_6\.pth covers \d+ tensors, but this model '
     r'trains \d+'),
])
def test_resume_with_changed_settings_names_the_keys(davpt_run, demo_data,
                                                     tmp_path, option,
                                                     expected):
    from mmseg_davpt.apis import CheckpointMismatchError
    work_dir, _ = davpt_run
    with pytest.raises(CheckpointMismatchError) as err:
        resume(DAVPT, str(work_dir / 'iter_6.pth'), demo_data, tmp_path,
               option)
    assert str(err.value).startswith('--resume: ')
    assert re.search(expected, str(err.value)), str(err.value)


# A checkpoint path that holds no checkpoint: the error names the file and
# what it is, wherever a checkpoint path is taken.

def _not_a_checkpoint(tmp_path, kind):
    path = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        path.write_bytes(b'')
    else:
        path.write_text('{"note": "not a checkpoint"}\n')
    expected = {'empty': r'the file is empty \(0 bytes\)',
                'text': r'it is a text file \(\d+ bytes, starting '
                        r"'\{\"note\": \"not a checkpoint\"\}'\)"}[kind]
    return str(path), expected


@pytest.mark.parametrize('kind', ['empty', 'text'])
@pytest.mark.parametrize('tool', ['test', 'train --resume', 'export_peft',
                                  'segment_image', 'apis'])
def test_file_that_is_no_checkpoint_is_named(demo_data, tmp_path, kind,
                                             tool):
    from mmseg_davpt.utils.checkpoint_file import CheckpointFileError
    data_root, vit = demo_data
    path, expected = _not_a_checkpoint(tmp_path, kind)
    image = osp.join(data_root, 'img_dir/val/0000.png')
    with pytest.raises(CheckpointFileError,
                       match=re.escape(path) + ' is not a readable '
                       'checkpoint: ' + expected):
        if tool == 'test':
            run_test_tool(DAVPT, path, demo_data, tmp_path / 'wd')
        elif tool == 'train --resume':
            resume(VPT, path, demo_data, tmp_path / 'wd')
        elif tool == 'export_peft':
            from tools.export_peft import main
            main([DAVPT, path, str(tmp_path / 'out.pth')])
        elif tool == 'segment_image':
            from tools.segment_image import main
            main([DAVPT, path, image, '--out', str(tmp_path / 'x.png')])
        else:
            from mmseg_davpt.apis import init_davpt_model
            init_davpt_model(DAVPT, path)
