"""The generated released-recipe configs hold the values of
``configs/cls/recipes.csv``, read here with the csv module and parsed by this
test's own rules (not the generator's), and they build."""
import csv
import os.path as osp

import pytest
from mmengine.config import Config
from tests._helpers import ROOT

CSV = osp.join(ROOT, 'configs', 'cls', 'recipes.csv')
with open(CSV, newline='') as _f:
    ROWS = list(csv.DictReader(_f))
NAMES = {'vitb': 'in21k', 'mae': 'mae', 'moco': 'mocov3'}
CKPT_OF_MODEL = {'vit-B': 'vit-b16_in21k', 'mae-B': 'mae_pretrain',
                 'moco-B': 'linear-vit-b-300ep'}


def released_config(row):
    bench = 'fgvc' if row['suite'] == 'fgvc' else 'vtab1k'
    task = {'cifar100': 'cifar'}.get(row['task'], row['task'])
    return Config.fromfile(osp.join(
        ROOT, 'configs', 'cls', 'released', bench,
        f'davpt-released_vit-b16-{NAMES[row["pretrain"]]}_{bench}-{task}.py'))


def layers(text):
    out = []
    for part in text.split(';'):
        bounds = [int(b) for b in part.split('-')]
        out += list(range(bounds[0], bounds[-1] + 1))
    return out


def test_csv_has_the_61_released_recipes():
    assert len(ROWS) == 61
    assert len({(r['pretrain'], r['suite'], r['task']) for r in ROWS}) == 61


@pytest.mark.parametrize('row', ROWS, ids=lambda r: r['yaml_file'])
def test_released_config_values_equal_the_recipe(row):
    cfg = released_config(row)
    backbone = cfg.model.backbone
    guidance = cfg.model.metric_guidance
    assert cfg.model.head.num_classes == int(row['num_classes'])
    assert CKPT_OF_MODEL[row['model_name']] in backbone.init_cfg.checkpoint
    # prompts and guided layers
    assert list(backbone.guided_layers) == layers(row['guided_layers'])
    assert backbone.num_guided_prompts == int(row['guided_prompts'])
    if row['num_prompts']:
        assert backbone.num_prompts == int(row['num_prompts'])
    else:  # every layer guided: the other count is unused
        assert set(layers(row['guided_layers'])) == set(range(12))
    assert backbone.prompt_init == ('xavier_div8' if row['init_divide_by8']
                                    == 'true' else 'xavier')
    assert backbone.prompt_norm == (None if row['vpt_norm'] == 'none' else
                                    row['vpt_norm'])
    assert backbone.prompt_attn_mask == (row['mask'] == 'true')
    assert backbone.prompt_dropout == float(row['prompt_dropout'])
    assert backbone.drop_path_rate == float(row['drop_path'])
    # MAE's head reads the mean of the final-LN tokens after [CLS]
    assert backbone.out_type == ('mean_tokens' if row['model_name'] == 'mae-B'
                                 else 'cls_token')
    assert row['classifier_feature'].startswith(
        'mean' if row['model_name'] == 'mae-B' else 'CLS')
    tuned = set(backbone.tune_params)
    expected = {'v_bias', 'proj_bias', 'patch_embed_bias', 'fc2_bias',
                'norm2_bias'}
    parts = row['tuned_params'].split(';')
    expected |= {'k_bias'} if 'k.bias' in parts else set()
    expected |= {'norm1'} if 'norm1(w+b)' in parts else set()
    expected |= {'cls_token'} if 'cls_token' in parts else set()
    assert tuned == expected
    # losses
    for key, weight in (('loss_prompt', 'beta'), ('loss_cls', 'lambda')):
        loss = guidance[key]
        assert loss.type == 'ProxyAnchorLoss'
        assert loss.loss_weight == float(row[weight])
        assert loss.similarity_scale == float(row['loss_vpt_scale_ratio'])
        assert loss.alpha == float(row['alpha'])
        assert loss.margin == float(row['margin'])
    assert (guidance.feature, guidance.token_source, guidance.cls_source) \
        == ('raw', 'block_input', 'attention_query')
    # mapping refresh: the released dynamic_kmeans start epoch, or none
    hook, = [h for h in cfg.custom_hooks
             if h.type == 'ClassPromptMappingHook']
    assert hook.by_epoch and hook.interval == 1
    if row['initial_mapping'] == 'all_classes':
        assert hook.refresh is False
    else:
        assert hook.refresh is True
        assert hook.begin == int(row['dynamic_kmeans'])
    # optimisation
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == float(row['lr'])
    assert optim.optimizer.weight_decay == float(row['weight_decay'])
    assert optim.paramwise_cfg.custom_keys['head.fc.weight'][
        'weight_decay'] == float(row['wd_head'])
    assert optim.paramwise_cfg.flat_decay_mult == 0.0
    assert optim.clip_grad == dict(type='value', clip_value=10.)
    assert optim.type == ('AmpOptimWrapper' if row['fp16'] == 'true' else
                          'OptimWrapper')
    sched, = cfg.param_scheduler
    assert sched.type == 'WarmupCosineLR'
    assert (sched.epochs, sched.warmup_epochs) == (int(row['epochs']),
                                                   int(row['warmup_epochs']))
    assert sched.warmup_lr == float(row['warmup_lr'])
    assert sched.min_lr == float(row['min_lr'])
    assert sched.convert_to_iter_based is True
    assert cfg.train_cfg.max_epochs == int(row['epochs'])
    assert cfg.train_cfg.val_begin == int(row['eval_after']) + 1
    # data: batch, class-balanced sampler, the splits the code used
    loader = cfg.train_dataloader
    assert loader.batch_size == int(row['batch_size'])
    assert loader.sampler.type == 'ClassBalancedSampler'
    assert loader.sampler.batch_size == int(row['batch_size'])
    assert loader.sampler.samples_per_class == int(row['samples_per_class'])
    assert loader.dataset.split == row['train_split'].split('.')[0]
    assert cfg.val_dataloader.dataset.split == \
        row['eval_split'].split('.')[0]


def test_tasks_without_recipe_use_the_paper_protocol_and_say_so():
    with_recipe = {(NAMES[r['pretrain']], r['task']) for r in ROWS}
    from mmseg_davpt.datasets.fgvc import FGVC_TASKS
    from mmseg_davpt.datasets.vtab1k import VTAB_TASKS
    missing = []
    for bench, names in (('fgvc', FGVC_TASKS), ('vtab1k', VTAB_TASKS)):
        for task in names:
            for pretrain in NAMES.values():
                csv_task = {'cifar': 'cifar100'}.get(task, task)
                if (pretrain, csv_task) in with_recipe:
                    continue
                path = osp.join(
                    ROOT, 'configs', 'cls', 'released', bench,
                    f'davpt-released_vit-b16-{pretrain}_{bench}-{task}.py')
                assert 'has no recipe' in open(path).read()
                cfg = Config.fromfile(path)
                assert cfg.model.metric_guidance.feature == 'query'
                missing.append((pretrain, task))
    assert len(missing) == 11


@pytest.mark.parametrize('pretrain', ['vitb', 'mae', 'moco'])
def test_released_config_builds_with_the_recipe_trainable_set(pretrain):
    from mmpretrain.registry import MODELS
    from mmengine.registry import DefaultScope
    row = next(r for r in ROWS if r['pretrain'] == pretrain
               and r['initial_mapping'] == 'kmeans')
    cfg = released_config(row)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    trainable = {n for n, p in model.backbone.named_parameters()
                 if p.requires_grad}
    parts = row['tuned_params'].split(';')
    assert ('cls_token' in trainable) == ('cls_token' in parts)
    assert ('layers.0.attn.attn.k_bias' in trainable) == ('k.bias' in parts)
    assert 'patch_embed.projection.bias' in trainable
    assert 'layers.0.attn.attn.v_bias' in trainable
    assert 'layers.0.attn.attn.q_bias' not in trainable
    assert model.metric_guidance.loss_prompt.similarity_scale == \
        float(row['loss_vpt_scale_ratio'])
