"""The authors' released per-task recipes (``configs/cls/recipes.csv``) as
config settings for ``tools/generate_cls_configs.py``.

``recipes.csv`` holds one row per recipe file of the authors' released code,
with the *effective* values: the code's defaults filled in and the keys it
silently ignores resolved (see ``configs/cls/README.md``). This module turns
a row into the settings of one config; rows that the code has no recipe for
get the paper's protocol defaults (``PAPER_DEFAULTS``).
"""
import csv
import os.path as osp
from typing import Dict, List, Optional, Tuple

from .shipped_configs import configs_root

# recipes.csv names -> this project's names
PRETRAIN = {'vitb': 'in21k', 'mae': 'mae', 'moco': 'mocov3'}
BENCHMARK = {'fgvc': 'fgvc', 'vtab': 'vtab1k'}
TASK = {'cifar100': 'cifar', 'kitti_dist': 'kitti'}
# the released code's parameter-name suffixes -> ``tune_params`` names. Its
# suffix rule for ``proj.bias`` also unfreezes the patch embedding's bias.
TUNED = {
    'k.bias': ('k_bias', ),
    'v.bias': ('v_bias', ),
    'proj.bias': ('proj_bias', 'patch_embed_bias'),
    'fc2.bias': ('fc2_bias', ),
    'norm2.bias': ('norm2_bias', ),
    'norm1(w+b)': ('norm1', ),
    'cls_token': ('cls_token', ),
}
# What a config without a released recipe uses: the paper's classification
# protocol (Sec. 5, App. A.2) and this project's DA-VPT defaults.
PAPER_DEFAULTS = dict(
    lr=1e-3, weight_decay=0.01, wd_head=0.01, batch_size=32, epochs=100,
    warmup_epochs=10, warmup_lr=1e-7, min_lr=1e-8, num_prompts=20,
    guided_prompts=20, guided_layers=(11, ), beta=0.05, lambda_=0.05,
    scale=1.0, refresh_begin=0, refresh=True, drop_path=0.0,
    samples_per_class=None, fp16=False, tune_params=(),
    prompt_init='vpt', prompt_norm=None, prompt_attn_mask=False,
    out_type='cls_token', eval_after=0)


def read_recipes(path: Optional[str] = None) -> List[Dict[str, str]]:
    """Rows of ``recipes.csv`` (default: ``configs/cls/recipes.csv`` of the
    checkout or of the installed package) as dicts of strings."""
    if path is None:
        path = osp.join(configs_root(), 'cls', 'recipes.csv')
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def parse_layers(text: str) -> Tuple[int, ...]:
    """``'11'``, ``'10;11'``, ``'9-11'`` -> ``(11,)``, ``(10, 11)``,
    ``(9, 10, 11)`` (0-based, inclusive ranges)."""
    layers = []
    for part in text.split(';'):
        if '-' in part:
            lo, hi = part.split('-')
            layers += range(int(lo), int(hi) + 1)
        else:
            layers.append(int(part))
    return tuple(layers)


def key_of(row: Dict[str, str]) -> Tuple[str, str, str]:
    """``(pretrain, benchmark, task)`` of a row in this project's names."""
    return (PRETRAIN[row['pretrain']], BENCHMARK[row['suite']],
            TASK.get(row['task'], row['task']))


def settings(row: Dict[str, str]) -> dict:
    """Config settings of one released recipe (effective values)."""
    guided_layers = parse_layers(row['guided_layers'])
    guided = int(row['guided_prompts'])
    # '' = no prompt outside guided layers is used (every layer guided)
    num_prompts = int(row['num_prompts']) if row['num_prompts'] else guided
    tuned = []
    for name in row['tuned_params'].split(';'):
        tuned += TUNED[name]
    refresh = row['refresh_start_epoch'] != ''
    return dict(
        lr=float(row['lr']), weight_decay=float(row['weight_decay']),
        wd_head=float(row['wd_head']), batch_size=int(row['batch_size']),
        epochs=int(row['epochs']), warmup_epochs=int(row['warmup_epochs']),
        warmup_lr=float(row['warmup_lr']), min_lr=float(row['min_lr']),
        num_prompts=num_prompts, guided_prompts=guided,
        guided_layers=guided_layers, beta=float(row['beta']),
        lambda_=float(row['lambda']),
        scale=float(row['loss_vpt_scale_ratio']),
        alpha=float(row['alpha']), margin=float(row['margin']),
        refresh=refresh,
        refresh_begin=int(row['refresh_start_epoch']) if refresh else 0,
        drop_path=float(row['drop_path']),
        samples_per_class=int(row['samples_per_class'])
        if row['class_sampler'] == 'true' else None,
        fp16=row['fp16'] == 'true',
        tune_params=tuple(sorted(set(tuned))),
        prompt_init='xavier_div8' if row['init_divide_by8'] == 'true'
        else 'xavier',
        prompt_norm='l2' if row['vpt_norm'] == 'l2' else None,
        prompt_attn_mask=row['mask'] == 'true',
        out_type='mean_tokens' if row['classifier_feature'].startswith(
            'mean') else 'cls_token',
        eval_after=int(row['eval_after']),
        train_split=row['train_split'], model_name=row['model_name'])


def comments(row: Optional[Dict[str, str]]) -> List[str]:
    """Comment lines for a generated config: the recipe file, and every
    way the code's run differs from what the recipe file says."""
    if row is None:
        return ['The released code has no recipe for this task: the paper\'s '
                'protocol defaults (Sec. 5, App. A.2) and this project\'s '
                'DA-VPT defaults are used.']
    lines = [f'Released recipe: {row["yaml_file"]} (effective values).']
    notes = [n.strip() for n in row['notes'].split('|') if n.strip()]
    lines += [f'As the code ran it: {n}' for n in notes]
    return lines
