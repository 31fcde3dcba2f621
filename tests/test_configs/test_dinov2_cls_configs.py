"""The generated DINOv2 ViT-B/14 classification configs (3 variants x 24
FGVC / VTAB-1k tasks): each builds with its classes and DINOv2's backbone
settings; trainable and frozen counts of ViT-B/14."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

pytest.importorskip('mmpretrain')

from mmseg_davpt.datasets.fgvc import FGVC_TASKS  # noqa: E402
from mmseg_davpt.datasets.vtab1k import VTAB_TASKS  # noqa: E402
from tools.count_params import build_model, count_params, summarise  # noqa
from tests._helpers import ROOT  # noqa: E402

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/cls/*/*_vit-b14-dinov2_*'
                                    '.py')))
D = 768


def test_dinov2_family_is_complete():
    assert len(CONFIGS) == 3 * (len(FGVC_TASKS) + len(VTAB_TASKS)) == 72


def test_every_dinov2_config_builds():
    for path in CONFIGS:
        name = osp.basename(path)
        cfg = Config.fromfile(path)
        variant, _, rest = name.partition('_vit-b14-dinov2_')
        benchmark, task = rest[:-3].split('-', 1)
        classes = FGVC_TASKS[task]['num_classes'] if benchmark == 'fgvc' \
            else VTAB_TASKS[task]
        b = cfg.model.backbone
        assert (b.patch_size, b.img_size) == (14, 224), name
        assert b.layer_scale_init_value > 0 and b.num_register_tokens == 0
        assert cfg.model.head.num_classes == classes, name
        assert (cfg.model.get('metric_guidance') is not None) == \
            variant.startswith('davpt'), name
        cfg.model.backbone.num_layers = 1
        if cfg.model.backbone.get('guided_layers'):
            cfg.model.backbone.guided_layers = (0, )
        model = build_model(cfg)
        assert model.backbone.patch_grid == (16, 16)
        assert model.head.fc.out_features == classes


@pytest.mark.parametrize('variant,biases', [('vpt', 0), ('davpt', 0),
                                            ('davpt_plus', 12 * 2 * D)])
def test_vit_b14_parameters(variant, biases):
    cfg = Config.fromfile(osp.join(
        ROOT, f'configs/cls/fgvc/{variant}_vit-b14-dinov2_fgvc-cub.py'))
    groups = summarise(count_params(build_model(cfg)))['groups']
    assert groups['backbone.prompts']['trainable'] == 12 * 20 * D
    assert groups['backbone.tuned_pretrained']['trainable'] == biases
    # patch embed, cls, 16x16+1 positions, 12 layers (with 2 LayerScale
    # vectors each), final LN
    layer = 4 * D + 3 * D * D + 3 * D + D * D + D + 8 * D * D + 5 * D + 2 * D
    body = 14 * 14 * 3 * D + D + D + 257 * D + 12 * layer + 2 * D
    assert groups['backbone.frozen']['total'] + biases == body
