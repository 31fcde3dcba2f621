"""Slide inference over many crops logs its progress (rank 0 only) and
returns exactly the logits of mmseg's slide_inference."""
import io
import logging

import torch
from mmengine.logging import MMLogger
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_davpt  # noqa: F401  (registers)
from mmseg_davpt.models.segmentors import slide_progress
from tests._tiny import segmentor


register_all_modules(init_default_scope=True)


def tiny_model(**test_cfg):
    cfg = segmentor(metric_guidance=False)
    cfg.test_cfg = dict(mode='slide', crop_size=(8, 8), stride=(4, 4),
                        **test_cfg)
    return MODELS.build(cfg).eval()


def captured_log():
    """Records of the current mmengine logger, as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    MMLogger.get_current_instance().addHandler(handler)
    return stream, handler


def run(model, inputs, metas):
    stream, handler = captured_log()
    try:
        with torch.no_grad():
            logits = model.slide_inference(inputs, metas)
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    return logits, stream.getvalue()


def test_many_crops_log_progress_and_logits_are_unchanged(monkeypatch):
    torch.manual_seed(0)
    model = tiny_model()
    inputs = torch.randn(2, 3, 30, 38)
    metas = [dict(img_shape=(30, 38), ori_shape=(30, 38))] * 2
    # (30-8+3)//4+1 = 7 rows x (38-8+3)//4+1 = 9 columns
    assert slide_progress.num_slide_crops((30, 38), (8, 8), (4, 4)) == 63
    logits, log = run(model, inputs, [dict(m) for m in metas])
    assert 'slide inference: 63 crops of 8x8 (stride 4x4) over a 30x38' in log
    assert 'slide inference: 6/63 crops' in log  # about every tenth
    assert 'slide inference: 63/63 crops' in log
    with torch.no_grad():
        stock = EncoderDecoder.slide_inference(model, inputs,
                                               [dict(m) for m in metas])
    assert torch.equal(logits, stock)
    # other ranks stay quiet
    monkeypatch.setattr(slide_progress, 'get_rank', lambda: 1)
    logits, log = run(model, inputs, [dict(m) for m in metas])
    assert 'slide inference' not in log and torch.equal(logits, stock)


def test_few_crops_or_disabled_stay_quiet():
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, 16, 16)  # 3 x 3 = 9 crops
    metas = [dict(img_shape=(16, 16), ori_shape=(16, 16))]
    _, log = run(tiny_model(), inputs, metas)
    assert 'slide inference' not in log
    _, log = run(tiny_model(progress_min_crops=4), inputs, metas)
    assert 'slide inference: 9 crops' in log
    _, log = run(tiny_model(progress_min_crops=None),
                 torch.randn(1, 3, 30, 38), metas)
    assert 'slide inference' not in log
