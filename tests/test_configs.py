"""Every shipped config loads and builds; ViT-L parameter counts match the
paper (Table 2) and hand-computed prompt / bias counts."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from tools.count_params import build_model, count_params, summarise

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '*.py')) +
    glob.glob(osp.join(ROOT, 'configs', 'demo', '*.py')))

# ViT-L/16: 24 layers, D = 1024; DA-VPT: 10 prompts in the guided layer 24.
VPT_PROMPTS = 24 * 20 * 1024
DAVPT_PROMPTS = (23 * 20 + 10) * 1024
KV_BIASES = 24 * 2 * 1024
# (paper's trainable count in M, prompts, tuned pretrained weights)
ADE20K = {
    'vpt_setr_ade20k.py': (13.6, VPT_PROMPTS, 0),
    'davpt_setr_ade20k.py': (13.6, DAVPT_PROMPTS, 0),
    'davpt_plus_setr_ade20k.py': (13.7, DAVPT_PROMPTS, KV_BIASES),
    'full_setr_ade20k.py': (317.3, 0, None),
}


def test_configs_are_shipped():
    names = {osp.basename(c) for c in CONFIGS}
    assert 'davpt_setr_vit-tiny_shapes-64x64.py' in names
    for dataset in ('ade20k', 'pascal_context_59'):
        for variant in ('vpt', 'davpt', 'davpt_plus', 'full'):
            assert f'{variant}_setr_{dataset}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    summary = summarise(count_params(build_model(cfg)))
    groups = summary['groups']
    name = osp.basename(path)
    is_davpt = name.startswith('davpt')
    assert (cfg.model.get('metric_guidance') is not None) == is_davpt
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    assert ('ClassPromptMappingHook' in hooks) == is_davpt
    if name in ADE20K:
        paper, prompts, tuned = ADE20K[name]
        assert abs(summary['trainable'] / 1e6 - paper) <= 0.05
        assert groups['backbone.prompts']['trainable'] == prompts
        if tuned is not None:
            assert groups['backbone.tuned_pretrained']['trainable'] == tuned
        # the paper's full-model size, whatever trains
        assert abs((summary['total'] - prompts) / 1e6 - 317.3) <= 0.05
