"""Inference entry points for full and PEFT checkpoints.

MMSegmentation's ``init_model`` / ``inference_model`` and ``MMSegInferencer``
work with our configs and *full* checkpoints as they are. Given a PEFT file
they would load the few trained tensors (non-strict) and leave the ViT
random, so use ``init_davpt_model`` / ``DAVPTInferencer`` here: they accept
both kinds and build a PEFT model on its base ViT first.
"""
import copy
import os.path as osp
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch.nn as nn
from mmengine.config import Config
from mmseg.apis import MMSegInferencer

from .peft import (check_base_init_cfg, init_base_weights,
                   is_peft_checkpoint, load_peft)


def read_image(path: str) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 in BGR order (what
    ``LoadImageFromFile`` produces), with a clear error when it can't."""
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'no image at {path}')
    try:
        img = mmcv.imread(path, flag='color')
    except Exception as e:  # decoders raise various types
        raise ValueError(f'cannot read {path} as an image: {e}') from e
    if img is None:
        raise ValueError(f'cannot read {path} as an image (not a format '
                         'OpenCV / Pillow can decode?)')
    return img


def config_dataset_meta(cfg: Config) -> Optional[dict]:
    """``dict(classes, palette)`` of the config's test dataset (its
    ``metainfo`` override, else the dataset class's ``METAINFO``)."""
    from mmseg.registry import DATASETS
    try:
        ds_cfg = cfg.test_dataloader.dataset
        meta = dict(ds_cfg.get('metainfo') or {})
        ds_cls = DATASETS.get(ds_cfg.type)
    except (AttributeError, KeyError):
        return None
    cls_meta = getattr(ds_cls, 'METAINFO', {}) if ds_cls is not None else {}
    classes = meta.get('classes', cls_meta.get('classes'))
    if classes is None:
        return None
    palette = meta.get('palette', cls_meta.get('palette'))
    if palette is None or len(palette) < len(classes):
        rng = np.random.RandomState(42)
        palette = rng.randint(0, 255, (len(classes), 3)).tolist()
    return dict(classes=tuple(classes), palette=[list(p) for p in palette])


def _load_config(config: Union[str, Path, Config],
                 cfg_options: Optional[dict]) -> Config:
    # (importing this module has registered our modules already, so configs
    # without custom_imports build too)
    if isinstance(config, (str, Path)):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'no config at {config}')
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a path or a Config, got '
                        f'{type(config).__name__}')
    else:
        config = copy.deepcopy(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return config


def build_from_checkpoint(cfg: Config, checkpoint: dict,
                          source: str = 'checkpoint') -> nn.Module:
    """Build ``cfg.model`` and load a full or PEFT checkpoint dict into it.

    Full: the backbone's ``init_cfg`` is dropped (every weight comes from the
    checkpoint; the pretrained file need not exist) and loading is strict.
    PEFT: the base ViT is loaded through ``init_cfg`` (``init_weights``),
    then ``load_peft`` checks it against the recorded fingerprint.
    Sets ``model.dataset_meta`` (checkpoint meta, else the config's dataset)
    and ``model.cfg``. The model stays on the CPU in train mode.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)  # leave the caller's config as is
    model_cfg.pop('pretrained', None)
    model_cfg.train_cfg = None
    peft = is_peft_checkpoint(checkpoint)
    if peft:
        check_base_init_cfg(model_cfg.backbone.get('init_cfg'), source,
                            checkpoint['meta']['peft'])
    else:
        model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    if peft:
        init_base_weights(model)
        load_peft(model, checkpoint, source=source)
    else:
        _load_checkpoint_to_model(model, checkpoint, strict=True)
    meta = checkpoint.get('meta') or {}
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta and dataset_meta.get('classes') is not None:
        model.dataset_meta = dict(classes=dataset_meta['classes'],
                                  palette=dataset_meta.get('palette'))
    else:
        model.dataset_meta = config_dataset_meta(cfg)
    model.cfg = cfg
    return model


def _read_checkpoint(checkpoint: str) -> dict:
    from mmengine.runner.checkpoint import _load_checkpoint
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'no checkpoint at {checkpoint}')
    return _load_checkpoint(checkpoint, map_location='cpu')


def init_davpt_model(config: Union[str, Path, Config],
                     checkpoint: str,
                     device: str = 'cpu',
                     cfg_options: Optional[dict] = None) -> nn.Module:
    """``mmseg.apis.init_model`` for full *and* PEFT checkpoints.

    Args:
        config: config file or ``Config``.
        checkpoint: a full checkpoint (``tools/train.py``) or a PEFT file
            (``tools/export_peft.py``); for the latter the config's backbone
            ``init_cfg`` must point at the base ViT it was trained on.
        device: ``'cpu'``, ``'cuda:0'``...; on the CPU SyncBN becomes BN.
        cfg_options: config overrides, as ``--cfg-options``.
    Returns:
        The segmentor in eval mode, with ``cfg`` and ``dataset_meta`` set, so
        ``mmseg.apis.inference_model(model, img)`` and
        ``show_result_pyplot`` work on it.
    """
    cfg = _load_config(config, cfg_options)
    model = build_from_checkpoint(cfg, _read_checkpoint(checkpoint),
                                  checkpoint)
    if str(device) == 'cpu':
        from mmengine.model import revert_sync_batchnorm
        model = revert_sync_batchnorm(model)
    return model.to(device).eval()


class DAVPTInferencer(MMSegInferencer):
    """``MMSegInferencer`` that also takes PEFT checkpoints as ``weights``
    (same arguments and outputs)."""

    def _init_model(self, cfg, weights, device='cpu'):
        if weights is None:
            return super()._init_model(cfg, weights, device)
        model = build_from_checkpoint(cfg, _read_checkpoint(weights), weights)
        return model.to(device).eval()
