"""Strict full-checkpoint loading (mmseg_davpt/apis/checkpoint.py) on the
tiny segmentor of tests/_tiny.py."""
import pytest
import torch
from mmengine.config import Config

import mmseg_davpt  # noqa: F401
from mmseg_davpt.apis import (CheckpointMismatchError,
                              build_model_from_checkpoint,
                              load_model_checkpoint)
from mmseg_davpt.utils.model import build_model
from tests._tiny import segmentor


def tiny(seed=0, **backbone):
    torch.manual_seed(seed)
    return build_model(Config(dict(model=segmentor(**backbone))))


def test_full_checkpoint_round_trip_is_exact(tmp_path):
    trained, fresh = tiny(seed=0), tiny(seed=1)
    path = str(tmp_path / 'full.pth')
    # a checkpoint saved from a DDP wrapper: keys start with 'module.'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in
                                trained.state_dict().items()}), path)
    load_model_checkpoint(fresh, path)
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    cfg = Config(dict(model=segmentor(),
                      test_dataloader=dict(dataset=dict(type='none'))))
    built = build_model_from_checkpoint(cfg, path)
    for key, value in trained.state_dict().items():
        assert torch.equal(built.state_dict()[key], value), key
    assert built.cfg is cfg and built.dataset_meta is None


def test_mismatch_loads_nothing_and_names_the_keys():
    ckpt = dict(state_dict=tiny(seed=0, num_prompts=8).state_dict())
    model = tiny(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_checkpoint(model, ckpt, source='eight.pth')
    assert str(err.value).startswith(
        'eight.pth does not match the model built from the config:\n'
        '  different shapes (2 keys): backbone.prompts.{0-1}: checkpoint '
        '(8, 64), model (4, 64)\n')
    for key, value in before.items():  # strict: nothing was copied
        assert torch.equal(model.state_dict()[key], value), key
    del ckpt['state_dict']['decode_head.conv_seg.bias']
    ckpt['state_dict']['decode_head.extra'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing from the checkpoint \(1 keys: '
                       r'decode_head 1; .*\): decode_head\.conv_seg\.bias\n'
                       r'  not in the model \(1 keys: decode_head 1\): '
                       r'decode_head\.extra'):
        load_model_checkpoint(model, ckpt, source='eight.pth')
