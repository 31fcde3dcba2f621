"""Inference with MMSegmentation's APIs and ours (mmseg_davpt/apis.py,
tools/segment_image.py) on full and PEFT checkpoints of the demo model."""
import os.path as osp

import numpy as np
import pytest
import torch

from tests.test_peft.test_peft import DAVPT, make_checkpoints


@pytest.fixture(scope='module')
def setup(demo_data, tmp_path_factory):
    """Checkpoints, the PEFT options, and two images: a 64x64 demo image
    and an 80x72 one (slide inference over several crops, padding)."""
    import cv2
    data_root, vit = demo_data
    root = tmp_path_factory.mktemp('inference')
    full, peft, _ = make_checkpoints(str(root), vit)
    image = osp.join(data_root, 'img_dir/val/0002.png')
    big = str(root / 'big.png')
    cv2.imwrite(big, cv2.resize(cv2.imread(image), (80, 72)))
    options = {'model.backbone.init_cfg.checkpoint': vit}
    return full, peft, options, [image, big]


def test_mmseg_apis_and_ours_agree_on_full_and_peft(setup):
    from mmseg.apis import MMSegInferencer, inference_model, init_model

    from mmseg_davpt.apis import DAVPTInferencer, init_davpt_model
    full, peft, options, images = setup
    # MMSegmentation's own entry points, full checkpoint (the config's
    # custom_imports registers our modules)
    mmseg_model = init_model(DAVPT, full, device='cpu')
    assert mmseg_model.dataset_meta['classes'][1] == 'disc'
    by_init = [inference_model(mmseg_model, img).pred_sem_seg.data[0]
               for img in images]
    inferencer = MMSegInferencer(DAVPT, weights=full, device='cpu',
                                 show_progress=False)
    by_inferencer = [inferencer(img)['predictions'] for img in images]
    # ours, PEFT file on the same base
    model = init_davpt_model(DAVPT, peft, cfg_options=options)
    assert not model.training and model.dataset_meta['classes'][4] == 'ring'
    by_peft = [inference_model(model, img).pred_sem_seg.data[0]
               for img in images]
    from mmengine.config import Config
    cfg = Config.fromfile(DAVPT)
    cfg.merge_from_dict(options)
    peft_inferencer = DAVPTInferencer(cfg, weights=peft, device='cpu',
                                      show_progress=False)
    by_peft_inferencer = [peft_inferencer(img)['predictions']
                          for img in images]
    assert [tuple(m.shape) for m in by_init] == [(64, 64), (72, 80)]
    for a, b, c, d in zip(by_init, by_inferencer, by_peft,
                          by_peft_inferencer):
        assert torch.equal(a, c)
        assert np.array_equal(b, d) and np.array_equal(a.numpy(), b)
        assert len(torch.unique(a)) > 1  # not a degenerate prediction


def test_init_davpt_model_errors(setup, tmp_path):
    from mmseg_davpt.apis import init_davpt_model
    full, peft, _, _ = setup
    with pytest.raises(FileNotFoundError, match='no checkpoint at'):
        init_davpt_model(DAVPT, str(tmp_path / 'none.pth'))
    with pytest.raises(FileNotFoundError, match='no config at'):
        init_davpt_model(str(tmp_path / 'none.py'), full)
    # a PEFT file needs its base ViT; the config's default path isn't there
    with pytest.raises(FileNotFoundError, match=r'base ViT .* must exist'):
        init_davpt_model(DAVPT, peft, cfg_options={
            'model.backbone.init_cfg.checkpoint': str(tmp_path / 'x.pth')})
    with pytest.raises(ValueError, match="needs the base ViT loaded"):
        init_davpt_model(DAVPT, peft,
                         cfg_options={'model.backbone.init_cfg': None})


def test_segment_image_tool(setup, tmp_path, capsys):
    from PIL import Image

    from tools.segment_image import main
    full, peft, options, images = setup
    outs = []
    for name, ckpt, extra in (('full', full, []),
                              ('peft', peft, ['--cfg-options'] + [
                                  f'{k}={v}' for k, v in options.items()])):
        out = tmp_path / f'{name}.png'
        main([DAVPT, ckpt, images[1], '--out', str(out), *extra])
        with Image.open(out) as png:
            assert png.size == (80, 72)  # painted at the image's size
            outs.append(np.asarray(png.convert('RGB')))
    printed = capsys.readouterr().out
    assert printed.count('80x72 px;') == 2 and 'wrote ' in printed
    assert np.array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match='cannot read .* as an image'):
        main([DAVPT, full, __file__, '--out', str(tmp_path / 'x.png')])
