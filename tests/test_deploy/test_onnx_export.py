"""ONNX export (mmseg_davpt/deploy, tools/export_onnx.py) against PyTorch,
and ONNX Runtime segmentation (tools/segment_image.py --backend
onnxruntime) against ``mmseg.apis.inference_model``."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from tests._helpers import DAVPT, ROOT
from tests.test_peft.test_peft import make_checkpoints

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

CLS_DEMO = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')
DINOV2_DEMO = osp.join(
    ROOT, 'configs/demo/davpt_setr_dinov2-tiny-reg2_shapes-64x64.py')
PARITY = re.compile(r'parity (OK|FAILED): max \|logit diff\| (\S+) .* '
                    r'differs on (\S+)% of (\d+) (pixels|images)')


def parity_line(text):
    match = PARITY.search(text)
    assert match, text
    verdict, diff, share, count, unit = match.groups()
    return verdict, float(diff), float(share), int(count), unit


def random_full_checkpoint(config, path, seed=0):
    """A full checkpoint of ``config``'s model with seeded random weights
    (every parameter, prompts and heads included, moved off its init)."""
    from mmengine.config import Config

    from mmseg_davpt.utils.model import build_model
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def ort_logits(path, pixels):
    from mmseg_davpt.deploy import ort_session
    return ort_session(path).run(None, {'pixels': pixels.numpy()})[0]


@pytest.fixture(scope='module')
def seg(demo_data, tmp_path_factory):
    """Full and PEFT checkpoints of the DA-VPT demo, their ONNX exports
    (tool output captured) and the PEFT options."""
    from tools.export_onnx import main
    _, vit = demo_data
    root = tmp_path_factory.mktemp('onnx')
    full, peft, _ = make_checkpoints(str(root), vit)
    options = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={vit}']
    return dict(root=root, full=full, peft=peft, options=options, vit=vit,
                main=main)


@pytest.mark.slow
def test_demo_segmentor_full_and_peft_export_one_graph(seg, capsys):
    main, root = seg['main'], seg['root']
    full_onnx, peft_onnx = str(root / 'full.onnx'), str(root / 'peft.onnx')
    assert main([DAVPT, seg['full'], full_onnx]) == 0
    verdict, diff, share, count, unit = parity_line(capsys.readouterr().out)
    # the demo slides 64x64 windows: the graph is one window
    assert (verdict, share, count, unit) == ('OK', 0.0, 64 * 64, 'pixels')
    assert diff < 1e-4
    assert main([DAVPT, seg['peft'], peft_onnx, *seg['options']]) == 0
    assert parity_line(capsys.readouterr().out)[0] == 'OK'
    import onnx
    from onnx import numpy_helper
    weights = [{t.name: numpy_helper.to_array(t)
                for t in onnx.load(p).graph.initializer}
               for p in (full_onnx, peft_onnx)]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert np.array_equal(value, weights[1][name]), name
    from mmseg_davpt.deploy import sample_pixels
    pixels = sample_pixels((64, 64), batch=1, seed=3)
    np.testing.assert_array_equal(ort_logits(full_onnx, pixels),
                                  ort_logits(peft_onnx, pixels))


@pytest.mark.slow
def test_dynamic_batch_and_tampered_graph(seg, capsys):
    import onnx
    from onnx import numpy_helper

    from mmseg_davpt.apis import init_davpt_model
    from mmseg_davpt.deploy import check_parity, logits_module, sample_pixels
    out = str(seg['root'] / 'dynamic.onnx')
    assert seg['main']([DAVPT, seg['full'], out, '--dynamic']) == 0
    assert parity_line(capsys.readouterr().out)[3] == 2 * 64 * 64
    model = init_davpt_model(DAVPT, seg['full'])
    pixels = sample_pixels((64, 64), batch=3, seed=1)
    with torch.no_grad():
        ref = logits_module(model)(pixels).numpy()
    np.testing.assert_allclose(ort_logits(out, pixels), ref, atol=1e-4)
    # a graph whose decode head differs from the checkpoint fails the check
    proto = onnx.load(out)
    conv = next(t for t in proto.graph.initializer
                if 'decode_head.conv_seg.weight' in t.name)
    conv.CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(conv) + 0.5, conv.name))
    bad = str(seg['root'] / 'tampered.onnx')
    onnx.save(proto, bad)
    parity = check_parity(model, bad, (64, 64), batch=2)
    assert not parity.ok and parity.max_abs_diff > 1e-3
    assert 'parity FAILED' in str(parity)


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_onnxruntime_backend_segments_like_inference_model(
        seg, demo_data, mode, tmp_path):
    """80x72 image: slide mode runs four 64x64 windows; whole mode runs
    the graph on the whole (resize-free) 64x64 demo image."""
    import cv2
    from mmseg.apis import inference_model

    from mmseg_davpt.apis import init_davpt_model, read_image
    from mmseg_davpt.deploy import OnnxSegmentor
    data_root, _ = demo_data
    img = read_image(osp.join(data_root, 'img_dir/val/0002.png'))
    opts = {}
    if mode == 'slide':
        img, shape = cv2.resize(img, (80, 72)), None
    else:
        opts, shape = {'model.test_cfg': dict(mode='whole')}, (64, 64)
    onnx_file = str(tmp_path / f'{mode}.onnx')
    model = init_davpt_model(DAVPT, seg['full'], cfg_options=opts)
    from mmseg_davpt.deploy import export_onnx
    export_onnx(model, onnx_file, shape)
    ref = inference_model(model, img)
    got = OnnxSegmentor(DAVPT, onnx_file, opts).segment(img)
    assert got.pred_sem_seg.data.shape == ref.pred_sem_seg.data.shape
    torch.testing.assert_close(got.seg_logits.data, ref.seg_logits.data,
                               atol=1e-4, rtol=0)
    assert torch.equal(got.pred_sem_seg.data, ref.pred_sem_seg.data)
    assert len(torch.unique(got.pred_sem_seg.data)) > 1


@pytest.mark.slow
def test_segment_image_tool_onnxruntime_backend(seg, demo_data, tmp_path,
                                                capsys):
    from PIL import Image

    from mmseg_davpt.apis import init_davpt_model
    from mmseg_davpt.deploy import export_onnx
    from tools.segment_image import main
    data_root, _ = demo_data
    image = osp.join(data_root, 'img_dir/val/0001.png')
    onnx_file = str(tmp_path / 'demo.onnx')
    export_onnx(init_davpt_model(DAVPT, seg['full']), onnx_file)
    painted = []
    for backend, ckpt in (('pytorch', seg['full']),
                          ('onnxruntime', onnx_file)):
        out = tmp_path / f'{backend}.png'
        main([DAVPT, ckpt, image, '--out', str(out), '--backend', backend])
        with Image.open(out) as png:
            painted.append(np.asarray(png.convert('RGB')))
    printed = capsys.readouterr().out.splitlines()
    summaries = [line for line in printed if '64x64 px;' in line]
    assert len(summaries) == 2 and summaries[0] == summaries[1]
    assert np.array_equal(painted[0], painted[1])


@pytest.mark.slow
def test_classifier_demo_exports(tmp_path, capsys):
    from tools.export_onnx import main
    ckpt = random_full_checkpoint(CLS_DEMO, str(tmp_path / 'cls.pth'))
    out = str(tmp_path / 'cls.onnx')
    assert main([CLS_DEMO, ckpt, out, '--dynamic',
                 '--check-batch', '8']) == 0
    verdict, diff, share, count, unit = parity_line(capsys.readouterr().out)
    assert (verdict, share, count, unit) == ('OK', 0.0, 8, 'images')
    from mmseg_davpt.apis import init_davpt_model
    from mmseg_davpt.deploy import sample_pixels
    model = init_davpt_model(CLS_DEMO, ckpt)
    pixels = sample_pixels((32, 32), batch=4, seed=5)
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=list(pixels)), False)
        ref = model(data['inputs'], mode='tensor')
    got = ort_logits(out, pixels)
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4)


@pytest.mark.slow
def test_dinov2_registers_demo_exports(tmp_path, capsys):
    from tools.export_onnx import main
    ckpt = random_full_checkpoint(DINOV2_DEMO, str(tmp_path / 'd.pth'))
    assert main([DINOV2_DEMO, ckpt, str(tmp_path / 'd.onnx')]) == 0
    verdict, diff, share, count, _ = parity_line(capsys.readouterr().out)
    assert (verdict, share, count) == ('OK', 0.0, 64 * 64) and diff < 1e-3


def test_export_tool_refuses_to_overwrite_its_inputs(tmp_path):
    from tools.export_onnx import parse_args
    ckpt = tmp_path / 'm.onnx'
    ckpt.write_bytes(b'')
    with pytest.raises(SystemExit):
        parse_args([DAVPT, str(ckpt), str(ckpt)])
    with pytest.raises(SystemExit):
        parse_args([DAVPT, str(ckpt), str(tmp_path / 'x.pt')])


def test_slide_windows_cover_the_image_as_mmseg():
    from mmseg_davpt.deploy import slide_windows
    wins = list(slide_windows(72, 80, (64, 64), (48, 48)))
    # two rows and two columns, the last aligned to the border
    assert wins == [(0, 64, 0, 64), (0, 64, 16, 80), (8, 72, 0, 64),
                    (8, 72, 16, 80)]
    assert list(slide_windows(64, 64, (64, 64), (48, 48))) == [
        (0, 64, 0, 64)]


@pytest.mark.slow
def test_onnx_latency_benchmark_reports_parity_and_ratio():
    from mmseg_davpt.benchmarks.cli import main
    report = main(['onnx', 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py',
                   '--warmup', '0', '--repeats', '2', '--device', 'cpu'])
    (record, ) = report.data['tables'][0]['records']
    assert record['shape'] == (64, 64) and record['changed_share'] == 0.0
    assert record['max_abs_diff'] < 1e-4
    assert len(record['pytorch_s']) == len(record['onnxruntime_s']) == 2
    # paired: the median over rounds of ONNX Runtime / PyTorch
    ratios = [o / p for o, p in zip(record['onnxruntime_s'],
                                    record['pytorch_s'])]
    assert record['ratio'] == pytest.approx(sum(ratios) / 2)
