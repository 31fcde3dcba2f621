#!/usr/bin/env python
"""Count total and trainable parameters of a segmentor or classifier config,
per module.

Builds the model through the config's registry (MMSegmentation's or
mmpretrain's) exactly as training would,
but never calls ``init_weights``, so no pretrained checkpoint is needed.
The backbone is split into its prompts, the pretrained weights that train
(the ``tune_params`` groups, or all of them with ``freeze_pretrained=False``)
and the frozen rest; every head gets its own row. Compare with the paper's
Table 2 (13.6M VPT / DA-VPT, 13.7M DA-VPT+, 317.3M full fine-tuning); for the
ViT-B classification configs the ``backbone (all)`` trainable count is the
prompt-tuning cost without the linear head.

Examples::

    python tools/count_params.py configs/davpt_plus_setr_ade20k.py
    python tools/count_params.py configs/vpt_setr_ade20k.py \
        --cfg-options model.backbone.num_prompts=10 --json counts.json
"""
import argparse
import json
from collections import OrderedDict
from typing import Dict

import torch.nn as nn
from mmengine.config import DictAction

import mmseg_davpt  # noqa: F401  (registers PromptedVisionTransformer)
from mmseg_davpt.utils.config import load_config
from mmseg_davpt.utils.model import build_model
from mmseg_davpt.utils.output_guard import check_output_file

BACKBONE_GROUPS = ('backbone.prompts', 'backbone.tuned_pretrained',
                   'backbone.frozen')


def group_of(name: str, trainable: bool) -> str:
    """Row of the table that parameter ``name`` belongs to."""
    parts = name.split('.')
    if parts[0] == 'backbone':
        if parts[1] == 'prompts':
            return 'backbone.prompts'
        return 'backbone.tuned_pretrained' if trainable else 'backbone.frozen'
    if parts[0] == 'auxiliary_head' and parts[1].isdigit():
        return f'auxiliary_head.{parts[1]}'  # a list of heads: one row each
    return parts[0]


def count_params(model: nn.Module) -> Dict[str, Dict[str, int]]:
    """``{group: {'total': n, 'trainable': n}}`` in module order."""
    counts = OrderedDict(
        (g, dict(total=0, trainable=0)) for g in BACKBONE_GROUPS)
    for name, param in model.named_parameters():
        row = counts.setdefault(
            group_of(name, param.requires_grad), dict(total=0, trainable=0))
        row['total'] += param.numel()
        if param.requires_grad:
            row['trainable'] += param.numel()
    return counts


def summarise(counts: Dict[str, Dict[str, int]]) -> dict:
    """Subtotals (backbone, heads), totals and trainable share."""

    def subtotal(pred):
        rows = [v for k, v in counts.items() if pred(k)]
        return dict(
            total=sum(r['total'] for r in rows),
            trainable=sum(r['trainable'] for r in rows))

    total = subtotal(lambda k: True)
    return dict(
        groups=counts,
        subtotals=OrderedDict(
            backbone=subtotal(lambda k: k.startswith('backbone.')),
            heads=subtotal(lambda k: k.split('.')[0].endswith('head'))),
        total=total['total'],
        trainable=total['trainable'],
        trainable_percent=100. * total['trainable'] / max(total['total'], 1))


def format_table(summary: dict) -> str:
    width = max(len(k) for k in list(summary['groups']) + ['trainable share'])

    def line(name, row):
        return (f'{name:<{width}}  {row["total"]:>13,} '
                f'{row["total"] / 1e6:>8.2f}M  {row["trainable"]:>13,} '
                f'{row["trainable"] / 1e6:>8.2f}M')

    head = f'{"group":<{width}}  {"total":>23}  {"trainable":>23}'
    rule = '-' * len(head)
    lines = [head, rule]
    lines += [line(k, v) for k, v in summary['groups'].items()]
    lines.append(rule)
    lines += [line(f'{k} (all)', v) for k, v in summary['subtotals'].items()]
    lines.append(
        line('total',
             dict(total=summary['total'], trainable=summary['trainable'])))
    lines.append(f'{"trainable share":<{width}}  '
                 f'{summary["trainable_percent"]:.2f} %')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. model.backbone.num_prompts=10')
    parser.add_argument('--json', help='also write the counts to this file')
    parser.add_argument('--force', action='store_true',
                        help='replace the --json file if it exists')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.json:
        check_output_file(args.json, [args.config], args.force, '--json')
    cfg = load_config(args.config, args.cfg_options)
    summary = summarise(count_params(build_model(cfg)))
    print(f'{args.config}\n{format_table(summary)}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, **summary), f, indent=2)


if __name__ == '__main__':
    main()
