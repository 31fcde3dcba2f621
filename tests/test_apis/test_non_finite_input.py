"""Images with NaN / inf pixels are refused (they gave NaN logits and class
0 everywhere, silently) on every inference path; tools/segment_image.py
draws 1x1 images."""
import numpy as np
import pytest
import torch

from tests.test_peft.test_peft import DAVPT, make_checkpoints


@pytest.fixture(scope='module')
def full_ckpt(demo_data, tmp_path_factory):
    _, vit = demo_data
    full, _, _ = make_checkpoints(str(tmp_path_factory.mktemp('nonfinite')),
                                  vit)
    return full


def image(seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 255, (64, 64, 3)).astype(np.uint8)


def test_non_finite_pixels_are_refused_by_api_inferencer_and_test_step(
        full_ckpt):
    from mmengine.config import Config
    from mmseg.apis import inference_model

    from mmseg_davpt.apis import DAVPTInferencer, init_davpt_model
    model = init_davpt_model(DAVPT, full_ckpt)
    bad = image().astype(np.float32)
    bad[5, 7, 1] = np.nan
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r'1 NaN and 1 infinite values.*'
                       r'class 0 everywhere'):
        inference_model(model, bad)
    inferencer = DAVPTInferencer(Config.fromfile(DAVPT), weights=full_ckpt,
                                 device='cpu', show_progress=False)
    with pytest.raises(ValueError, match='NaN'):
        inferencer(bad)
    # tools/test.py's path: a dataloader batch through test_step, named
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_path='data/x/0001.tif',
                                         img_shape=(64, 64),
                                         ori_shape=(64, 64)))
    batch = dict(inputs=[torch.from_numpy(bad).permute(2, 0, 1)],
                 data_samples=[sample])
    with pytest.raises(ValueError, match='image data/x/0001.tif'):
        model.test_step(batch)
    # finite float images are fine and match their uint8 version
    good = image()
    a = inference_model(model, good).pred_sem_seg.data
    b = inference_model(model, good.astype(np.float32)).pred_sem_seg.data
    assert torch.equal(a, b)


@pytest.mark.parametrize('labels', [True, False])
def test_segment_image_draws_a_1x1_image(full_ckpt, tmp_path, capsys,
                                         labels):
    import cv2
    from PIL import Image

    from tools.segment_image import main
    src = str(tmp_path / 'one.png')
    cv2.imwrite(src, np.full((1, 1, 3), 120, np.uint8))
    out = tmp_path / 'out.png'
    main([DAVPT, full_ckpt, src, '--out', str(out)] +
         ([] if labels else ['--no-labels']))
    with Image.open(out) as png:
        assert png.size == (1, 1)
    assert '1x1 px;' in capsys.readouterr().out
