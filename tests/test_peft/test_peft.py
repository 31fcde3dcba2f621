"""PEFT checkpoints (mmseg_davpt/peft/, tools/export_peft.py, PEFT files in
tools/test.py) on the DA-VPT demo model with the converted demo ViT.

Training is simulated in-process (prompts, heads, k/v biases, BN statistics
and the class -> prompt mapping moved as training moves them), which is
what a PEFT file has to carry; ``helpers`` here are reused by
test_inference.py and test_prompt_attention.py.
"""
import os.path as osp
import re

import pytest
import torch

from mmseg_davpt.peft import (base_fingerprint, is_peft_checkpoint,
                              load_peft, peft_record, peft_state_dict,
                              save_peft)
from tests._helpers import DAVPT, VPT, run_main
from tools.test import main as evaluate


# ------------------------------------------------------------------ helpers
def demo_cfg(vit, config=DAVPT, **options):
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': vit,
                         **options})
    return cfg


def build_demo_model(vit, config=DAVPT, **options):
    """The demo segmentor with the base ViT loaded, as training starts."""
    from mmseg_davpt.utils.model import build_model
    model = build_model(demo_cfg(vit, config, **options))
    model.init_weights()
    return model


@torch.no_grad()
def simulate_training(model, seed=0):
    """Move what training moves: trainable parameters, BN statistics of the
    heads and the mapping buffers (class 0 is background: no prompt)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    for name, buf in model.named_buffers():
        if name.endswith('running_mean'):
            buf.normal_(0, 0.1, generator=g)
        elif name.endswith('running_var'):
            buf.uniform_(0.5, 2., generator=g)
        elif name.endswith('num_batches_tracked'):
            buf.fill_(300)
    mapping = model.metric_guidance.mapping
    mapping.class_to_prompt.copy_(torch.tensor([-1, 0, 1, 2, 0]))
    mapping.centroids.normal_(generator=g)
    mapping.feat_sum.normal_(generator=g)
    mapping.feat_count.fill_(7.)
    mapping.num_refreshes.fill_(6)
    return model


def dataset_meta():
    from mmseg_davpt.datasets.demo_shapes import DemoShapesDataset
    return dict(dataset_meta=dict(DemoShapesDataset.METAINFO))


def make_checkpoints(out_dir, vit, **options):
    """``(full_path, peft_path, model)``: a trained-looking model saved both
    ways, with the dataset meta a Runner checkpoint has."""
    model = simulate_training(build_demo_model(vit, **options))
    full = osp.join(out_dir, 'full.pth')
    peft = osp.join(out_dir, 'peft.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dataset_meta()),
               full)
    save_peft(model, peft, base_checkpoint=vit, meta=dataset_meta())
    return full, peft, model


def demo_image(data_root):
    """A generated validation image, as the model's input ``(1, 3, 64, 64)``
    (test pipeline + data preprocessor)."""
    from mmseg_davpt.apis import read_image
    return read_image(osp.join(data_root, 'img_dir/val/0000.png'))


def model_input(model, img_bgr):
    from mmseg_davpt.visualization import prepare_image
    return prepare_image(model, img_bgr)


def logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model.encode_decode(inputs, [dict(img_shape=(64, 64))])


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def ckpts(demo_data, tmp_path_factory):
    _, vit = demo_data
    return make_checkpoints(str(tmp_path_factory.mktemp('peft')), vit)


@pytest.fixture(scope='module')
def other_base(tmp_path_factory):
    """The demo ViT drawn with another seed, converted the same way."""
    from tools.convert_vit_checkpoint import main as convert_vit
    from tools.make_demo_vit import main as make_demo_vit
    root = tmp_path_factory.mktemp('other_base')
    make_demo_vit(['--out', str(root / 'timm.pth'), '--seed', '1'])
    convert_vit([str(root / 'timm.pth'), str(root / 'vit.pth')])
    return str(root / 'vit.pth')


# ------------------------------------------------------------------ tests
def test_peft_state_dict_holds_only_the_trained_part(ckpts):
    _, _, model = ckpts
    sd = peft_state_dict(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(sd)
    backbone = sorted(k for k in sd if k.startswith('backbone.'))
    assert backbone == [f'backbone.prompts.{i}' for i in range(4)]
    for key in ('metric_guidance.mapping.class_to_prompt',
                'metric_guidance.mapping.centroids',
                'metric_guidance.mapping.num_refreshes',
                'decode_head.up_convs.0.0.bn.running_var',
                'auxiliary_head.2.up_convs.1.0.bn.num_batches_tracked'):
        assert key in sd, key
    # everything else of the model is the frozen ViT
    rest = set(model.state_dict()) - set(sd)
    assert rest and all(k.startswith('backbone.') for k in rest)


def test_davpt_plus_saves_packed_kv_bias(demo_data):
    _, vit = demo_data
    model = build_demo_model(vit, **{'model.backbone.tune_params': 'kv'})
    base_q = model.backbone.layers[2].attn.attn.q_bias.clone()
    simulate_training(model)
    sd = peft_state_dict(model)
    layer_keys = sorted(k for k in sd if k.startswith('backbone.layers.'))
    # the split k/v parameters are saved under the checkpoint's packed key
    assert layer_keys == [f'backbone.layers.{i}.attn.attn.in_proj_bias'
                          for i in range(4)]
    packed = sd['backbone.layers.2.attn.attn.in_proj_bias']
    assert torch.equal(packed[:96], base_q)  # q part untouched
    assert torch.equal(packed[96:], torch.cat(
        [model.backbone.layers[2].attn.attn.k_bias,
         model.backbone.layers[2].attn.attn.v_bias]))
    fresh = build_demo_model(vit, **{'model.backbone.tune_params': 'kv'})
    load_peft(fresh, dict(state_dict=sd, meta=dict(peft=dict(
        base_fingerprint=base_fingerprint(model), base_checkpoint=vit))))
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_peft_on_the_same_base_predicts_bit_identically(ckpts, demo_data):
    full, peft, trained = ckpts
    data_root, vit = demo_data
    fresh = build_demo_model(vit)
    inputs = model_input(fresh, demo_image(data_root))
    before = logits(fresh, inputs)
    load_peft(fresh, peft)
    after = logits(fresh, inputs)
    expected = logits(trained, inputs)
    assert not torch.equal(before, expected)  # the PEFT part matters
    assert torch.equal(after, expected)
    assert torch.equal(fresh.predict(inputs)[0].pred_sem_seg.data,
                       trained.predict(inputs)[0].pred_sem_seg.data)
    for key, value in trained.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_peft_file_is_small_and_records_its_base(ckpts, demo_data, tmp_path):
    full, peft, model = ckpts
    _, vit = demo_data
    full_size, peft_size = osp.getsize(full), osp.getsize(peft)
    assert peft_size * 3 < full_size  # demo: 0.67 MB vs 2.6 MB
    ckpt = torch.load(peft, weights_only=False)
    record = ckpt['meta']['peft']
    assert record['base_checkpoint'] == vit
    assert record['base_fingerprint'] == base_fingerprint(model)
    assert record['num_tensors'] == len(ckpt['state_dict'])
    assert ckpt['meta']['dataset_meta']['classes'][1] == 'disc'
    assert is_peft_checkpoint(ckpt) and peft_record(peft) == record
    assert not is_peft_checkpoint(torch.load(full, weights_only=False))
    assert peft_record(full) is None
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert peft_record(str(tmp_path / 'empty.pth')) is None


def test_wrong_base_is_a_clear_error(ckpts, demo_data, other_base):
    _, peft, _ = ckpts
    _, vit = demo_data
    model = build_demo_model(other_base)
    with pytest.raises(ValueError) as err:
        load_peft(model, peft)
    msg = str(err.value)
    record = torch.load(peft, weights_only=False)['meta']['peft']
    assert 'trained on other base weights' in msg
    assert record['base_fingerprint'] in msg
    assert base_fingerprint(model) in msg
    assert vit in msg and 'init_cfg.checkpoint' in msg
    # strict_base=False loads anyway (the user takes the responsibility)
    load_peft(model, peft, strict_base=False)
    assert torch.equal(model.backbone.prompts['3'],
                       torch.load(peft, weights_only=False)['state_dict']
                       ['backbone.prompts.3'])


def test_peft_of_another_config_is_a_clear_error(ckpts, demo_data, tmp_path):
    _, peft, _ = ckpts
    _, vit = demo_data
    vpt = build_demo_model(vit, config=VPT)  # same base, no guidance
    with pytest.raises(ValueError, match=r'holds 5 tensors this model lacks'
                       r'.*metric_guidance\.mapping\.centroids'):
        load_peft(vpt, peft)
    with pytest.raises(FileNotFoundError, match='no PEFT checkpoint at'):
        load_peft(vpt, str(tmp_path / 'none.pth'))
    with pytest.raises(ValueError, match='not a PEFT checkpoint'):
        load_peft(vpt, dict(state_dict={}, meta={}))


def test_export_peft_tool(ckpts, demo_data, other_base, tmp_path, capsys):
    from tools.export_peft import main as export_peft
    full, peft, model = ckpts
    _, vit = demo_data
    out = str(tmp_path / 'exported.pth')
    export_peft([DAVPT, full, out, '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={vit}'])
    printed = capsys.readouterr().out
    assert re.search(r'full checkpoint: .*: \d+ bytes \(\d+\.\d\d MB\)',
                     printed)
    assert re.search(r'PEFT checkpoint: .*% of the full file \(\d+\.\dx '
                     r'smaller\)', printed)
    exported = torch.load(out, weights_only=False)
    saved = torch.load(peft, weights_only=False)
    assert exported['meta']['peft'] == saved['meta']['peft']
    assert exported['meta']['dataset_meta'] == saved['meta']['dataset_meta']
    assert exported['state_dict'].keys() == saved['state_dict'].keys()
    for key, value in saved['state_dict'].items():
        assert torch.equal(value, exported['state_dict'][key]), key
    # the full checkpoint was not trained on the other base
    with pytest.raises(ValueError, match='frozen weights in .* differ'):
        export_peft([DAVPT, full, str(tmp_path / 'x.pth'), '--cfg-options',
                     f'model.backbone.init_cfg.checkpoint={other_base}'])
    with pytest.raises(ValueError, match='already a PEFT checkpoint'):
        export_peft([DAVPT, peft, str(tmp_path / 'y.pth')])


def test_test_tool_config_for_peft_files(ckpts, demo_data, tmp_path):
    from tools import test
    full, peft, _ = ckpts
    _, vit = demo_data
    base = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={vit}']
    cfg = test.build_config(test.parse_args([DAVPT, peft, '--tta', *base]))
    assert cfg.load_from is None  # the runner must not load it
    assert cfg.model.module.backbone.init_cfg.checkpoint == vit
    cfg = test.build_config(test.parse_args([DAVPT, full]))
    # main() loads either kind strictly; the runner's non-strict load_from
    # stays unused
    assert cfg.load_from is None and cfg.model.backbone.init_cfg is None
    # a PEFT file without its base ViT stops before the runner is built
    with pytest.raises(FileNotFoundError,
                       match=r'base ViT .*none\.pth \(backbone init_cfg\) '
                       r'must exist\. It was trained on '):
        test.build_config(test.parse_args(
            [DAVPT, peft, '--cfg-options',
             f'model.backbone.init_cfg.checkpoint={tmp_path}/none.pth']))
    with pytest.raises(ValueError, match='needs the base ViT loaded'):
        test.build_config(test.parse_args(
            [DAVPT, peft, '--cfg-options', 'model.backbone.init_cfg=None']))


def test_load_peft_into_tta_runner(ckpts, demo_data):
    from mmseg.registry import MODELS

    from mmseg_davpt.apis import load_model_checkpoint
    _, peft, trained = ckpts
    data_root, vit = demo_data
    tta = MODELS.build(dict(type='SegTTAModel',
                            module=demo_cfg(vit).model))
    load_model_checkpoint(tta, peft)  # as tools/test.py on runner.model
    inputs = model_input(tta.module, demo_image(data_root))
    assert torch.equal(logits(tta.module, inputs), logits(trained, inputs))


@pytest.mark.slow
def test_test_tool_on_peft_equals_full(ckpts, demo_data, tmp_path):
    full, peft, _ = ckpts
    data_root, vit = demo_data
    opts = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={vit}'] + [
        f'{s}_dataloader.dataset.data_root={data_root}'
        for s in ('train', 'val', 'test')
    ]
    logs = [run_main(evaluate, [DAVPT, ckpt, '--work-dir', tmp_path / name,
                                 *opts], tmp_path / name)
            for name, ckpt in (('full', full), ('peft', peft))]
    assert 'Loaded PEFT checkpoint' in logs[1]
    assert 'Loaded PEFT checkpoint' not in logs[0]
    metrics = [re.findall(r'aAcc: ([0-9.]+)\s+mIoU: ([0-9.]+)\s+'
                          r'mAcc: ([0-9.]+)', log) for log in logs]
    assert metrics[0] and metrics[0] == metrics[1]
    # the per-class table too
    tables = [re.findall(r'\|\s*(\w+)\s*\|\s*([0-9.nan]+)\s*\|\s*([0-9.nan]+)'
                         r'\s*\|', log) for log in logs]
    assert len(tables[0]) == 5 and tables[0] == tables[1]
