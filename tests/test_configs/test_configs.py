"""Every shipped config loads and builds; ViT-L parameter counts match the
paper (Table 2) and hand-computed prompt / bias counts; the PASCAL Context
60-class configs (the paper's protocol) keep background as class 0."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from tools.count_params import (BACKBONE_GROUPS, build_model, count_params,
                                summarise)
from tests._helpers import ROOT

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
    # the released code's layout: 10 prompts in layer 12, 20 in the others
    'davpt-released_setr_ade20k.py': (13.6, DAVPT_PROMPTS, 0),
    'davpt_plus-released_setr_ade20k.py': (13.7, DAVPT_PROMPTS, KV_BIASES),
}


def test_released_segmentation_settings_differ_only_where_documented():
    """The released code's ADE20K settings (guided layer 11 with 10
    prompts, 20 elsewhere, scale ratio 5, beta = lambda = 0.05, block-input
    features, xavier / 8 init) next to the paper's reading."""
    paper = Config.fromfile(osp.join(ROOT, 'configs', 'davpt_setr_ade20k.py'))
    released = Config.fromfile(
        osp.join(ROOT, 'configs', 'davpt-released_setr_ade20k.py'))
    pb, rb = paper.model.backbone, released.model.backbone
    assert (tuple(pb.guided_layers), tuple(rb.guided_layers)) == ((23, ),
                                                                  (11, ))
    assert rb.num_guided_prompts == 10 and rb.num_prompts == 20
    assert rb.prompt_init == 'xavier_div8' and 'prompt_init' not in pb
    pg, rg = paper.model.metric_guidance, released.model.metric_guidance
    assert (pg.feature, rg.feature) == ('query', 'raw')
    assert (pg.get('token_source', 'attention_output'),
            rg.token_source) == ('attention_output', 'block_input')
    assert (pg.get('cls_source', 'attention_output'),
            rg.cls_source) == ('attention_output', 'attention_query')
    assert (pg.pooling, rg.pooling) == ('class_masked', 'image_mean')
    for key in ('loss_prompt', 'loss_cls'):
        assert rg[key].loss_weight == pg[key].loss_weight == 0.05
        assert rg[key].similarity_scale == 5.0
        assert pg[key].get('similarity_scale', 1.0) == 1.0
    for cfg in (pb, rb):
        cfg.pop('guided_layers'), cfg.pop('num_guided_prompts')
        cfg.pop('prompt_init', None)
    assert pb == rb


def test_configs_are_shipped():
    names = {osp.basename(c) for c in CONFIGS}
    assert 'davpt_setr_vit-tiny_shapes-64x64.py' in names
    for dataset in ('ade20k', 'pascal_context', 'pascal_context_59'):
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


VARIANTS = ('vpt', 'davpt', 'davpt_plus', 'full')


@pytest.mark.parametrize('variant', VARIANTS)
def test_pascal_context_60_classes_keep_background(variant):
    """60 classes in every head, label 0 is 'background' and is trained
    (not reduced to the ignore index) but never a guidance target."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', f'{variant}_setr_pascal_context.py'))
    heads = [cfg.model.decode_head, *cfg.model.auxiliary_head]
    assert [h.num_classes for h in heads] == [60] * 4
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert dataset.type == 'PascalContextDataset'
        assert dataset.reduce_zero_label is False
        # the load-time label check counts background as a class too
        checks = [t for t in dataset.pipeline
                  if t['type'] == 'CheckSegAnnotation']
        assert [t['num_classes'] for t in checks] == [60]
    tta_checks = [t for step in cfg.tta_pipeline[1]['transforms'] for t in step
                  if t['type'] == 'CheckSegAnnotation']
    assert [t['num_classes'] for t in tta_checks] == [60]
    from mmseg.datasets import PascalContextDataset
    assert len(PascalContextDataset.METAINFO['classes']) == 60
    assert PascalContextDataset.METAINFO['classes'][0] == 'background'
    if variant.startswith('davpt'):
        guidance = cfg.model.metric_guidance
        assert tuple(guidance.background_classes) == (0, )
        # everything else is the shared guidance base's
        shared = Config.fromfile(osp.join(
            ROOT, 'configs/_base_/davpt/seg_metric_guidance.py'))
        expected = dict(shared.davpt_metric_guidance,
                        background_classes=(0, ))
        assert guidance.to_dict() == expected
        model = build_model(cfg)
        assert model.metric_guidance.is_background.tolist() == \
            [True] + [False] * 59
    else:
        assert cfg.model.get('metric_guidance') is None


@pytest.mark.parametrize('variant', VARIANTS)
def test_pascal_context_60_vs_59_parameter_counts(variant):
    """The 60-class configs differ from the 59-class ones only by one more
    output class in each of the 4 heads: a 1x1 conv from 256 channels plus
    its bias, i.e. 4 x 257 parameters, all trainable."""
    counts = {}
    for suffix in ('', '_59'):
        cfg = Config.fromfile(osp.join(
            ROOT, 'configs', f'{variant}_setr_pascal_context{suffix}.py'))
        counts[suffix] = summarise(count_params(build_model(cfg)))
    for key in ('total', 'trainable'):
        assert counts[''][key] - counts['_59'][key] == 4 * 257
    for group in BACKBONE_GROUPS:
        assert counts['']['groups'][group] == counts['_59']['groups'][group]
