"""Inference entry points for full and PEFT checkpoints.

MMSegmentation's ``init_model`` / ``inference_model`` and ``MMSegInferencer``
work with our configs and *full* checkpoints as they are. Given a PEFT file
they would load the few trained tensors (non-strict) and leave the ViT
random, so use ``init_davpt_model`` / ``DAVPTInferencer`` here: they accept
both kinds (``build_model_from_checkpoint``).
"""
import os.path as osp
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch.nn as nn
from mmengine.config import Config
from mmseg.apis import MMSegInferencer

from ..utils.config import load_config
from .checkpoint import build_model_from_checkpoint


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
    cfg = load_config(config, cfg_options)
    model = build_model_from_checkpoint(cfg, checkpoint)
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
        model = build_model_from_checkpoint(cfg, weights)
        return model.to(device).eval()
