"""Comparing state dicts and naming the differences
(mmseg_davpt/utils/state_dict.py)."""
import torch

from mmseg_davpt.utils.state_dict import (compare_state_dicts, describe_keys,
                                          group_keys)


def test_group_keys_collapses_layer_indices():
    keys = [f'backbone.layers.{i}.ln1.weight' for i in (0, 1, 2, 5, 10, 11)]
    keys += ['decode_head.conv_seg.bias', 'aux.1.convs.0.w', 'aux.2.convs.1.w',
             'backbone.prompts.3']
    assert group_keys(keys) == [
        'aux.N.convs.N.w (2 keys)',
        'backbone.layers.{0-2,5,10-11}.ln1.weight',
        'backbone.prompts.3',
        'decode_head.conv_seg.bias',
    ]


def test_describe_keys_cuts_the_list():
    keys = [f'head{c}.weight' for c in 'abcdefghij']
    text = describe_keys(keys, limit=3)
    assert text == 'heada.weight, headb.weight, headc.weight, ... ' \
        '(7 more groups)'
    assert describe_keys(keys[:2]) == 'heada.weight, headb.weight'


def test_compare_state_dicts():
    model = {'a.weight': torch.zeros(2, 3), 'a.bias': torch.zeros(2),
             'bn.num_batches_tracked': torch.zeros(()),
             'p.0': torch.zeros(4, 8), 'p.1': torch.zeros(4, 8)}
    same = compare_state_dicts(dict(model), model)
    assert not same
    # num_batches_tracked may be missing (older checkpoints)
    assert not compare_state_dicts(
        {k: v for k, v in model.items() if 'num_batches' not in k}, model)
    ckpt = {'a.weight': torch.zeros(2, 3), 'extra': torch.zeros(1),
            'p.0': torch.zeros(8, 8), 'p.1': torch.zeros(8, 8)}
    diff = compare_state_dicts(ckpt, model)
    assert diff.missing == ['a.bias']
    assert diff.unexpected == ['extra']
    assert diff.shapes == {'p.0': ((8, 8), (4, 8)), 'p.1': ((8, 8), (4, 8))}
    text = diff.describe()
    assert '  missing from the checkpoint (1 keys: a 1; they would keep ' \
        'their initial values): a.bias' in text
    assert '  not in the model (1 keys: extra 1): extra' in text
    assert '  different shapes (2 keys): p.{0-1}: checkpoint (8, 8), model ' \
        '(4, 8)' in text


def test_backbone_only_file_is_recognised():
    model = {f'backbone.layers.{i}.w': 0 for i in range(4)}
    model.update({'backbone.cls_token': 0, 'head.w': 0})
    vit = {k[len('backbone.'):]: torch.zeros(1) for k in model
           if k.startswith('backbone.')}
    vit['final_norm.w'] = torch.zeros(1)  # 5 of 6 keys are the backbone's
    diff = compare_state_dicts(vit, {k: torch.zeros(1) for k in model})
    assert diff.looks_backbone_only(model)
    other = compare_state_dicts({'fc.w': torch.zeros(1)},
                                {k: torch.zeros(1) for k in model})
    assert not other.looks_backbone_only(model)
