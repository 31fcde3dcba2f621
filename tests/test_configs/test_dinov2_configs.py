"""The DINOv2-L/14 segmentation configs (configs/dinov2/) load and build,
with the ViT-L/16 configs' prompt layout and hand-computed counts."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from tools.count_params import build_model, count_params, summarise
from tests._helpers import ROOT

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'dinov2', '*.py')))

D, LAYERS = 1024, 24
VPT_PROMPTS = LAYERS * 20 * D
DAVPT_PROMPTS = (23 * 20 + 10) * D
KV_BIASES = LAYERS * 2 * D
# DINOv2-L/14 body: patch embed (14x14x3 -> D, bias), cls, 37x37+1
# positions, per layer 2 LN + qkv + proj + MLP + 2 LayerScale
PER_LAYER = 4 * D + (3 * D * D + 3 * D) + (D * D + D) + \
    (4 * D * D + 4 * D) + (4 * D * D + D) + 2 * D
BODY = (14 * 14 * 3 * D + D) + D + (37 * 37 + 1) * D + LAYERS * PER_LAYER


def test_all_variants_shipped():
    names = {osp.basename(c) for c in CONFIGS}
    for head in ('setr', 'upernet'):
        for data in ('ade20k', 'pascal_context'):
            for variant in ('vpt', 'davpt', 'davpt_plus'):
                assert f'{variant}_{head}_dinov2-l14_{data}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_dinov2_config_builds(path):
    name = osp.basename(path)
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    assert backbone.patch_size == 14 and backbone.embed_dims == D
    assert backbone.layer_scale_init_value > 0
    model = build_model(cfg)
    summary = summarise(count_params(model))
    groups = summary['groups']
    is_davpt = name.startswith('davpt')
    assert (cfg.model.get('metric_guidance') is not None) == is_davpt
    prompts = DAVPT_PROMPTS if is_davpt else VPT_PROMPTS
    assert groups['backbone.prompts']['trainable'] == prompts
    tuned = KV_BIASES if name.startswith('davpt_plus') else 0
    assert groups['backbone.tuned_pretrained']['trainable'] == tuned
    if is_davpt:
        assert tuple(backbone.guided_layers) == (23, )
        assert model.backbone.prompt_counts == [20] * 23 + [10]
    # the frozen body is DINOv2-L/14's (pos_embed at the config's grid)
    grid = model.backbone.patch_grid
    # final_norm=False: no final LN
    body = BODY + (grid[0] * grid[1] - 37 * 37) * D
    own = sum(p.numel() for n, p in model.backbone.named_parameters()
              if not n.startswith('prompts.'))
    assert own == body
    classes = 60 if 'pascal' in name else 150
    assert cfg.model.decode_head.num_classes == classes
    if 'upernet' in name:
        assert cfg.model.neck.type == 'MultiLevelNeck'
        assert cfg.model.decode_head.type == 'UPerHead'
        assert cfg.model.auxiliary_head.type == 'FCNHead'
        assert cfg.model.auxiliary_head.num_classes == classes
    else:
        assert [h.num_classes for h in cfg.model.auxiliary_head] == \
            [classes] * 3
