"""The one way a trained checkpoint (full or PEFT) gets into a model, used by
every tool: strict, so a checkpoint that does not fit the config stops with
the keys that differ instead of leaving weights at their random init."""
import copy
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmengine.config import Config

from ..peft import (PEFT_META_KEY, check_base_init_cfg, is_peft_checkpoint,
                    load_peft)
from ..utils.checkpoint_file import read_checkpoint
from ..utils.model import build_model, unwrap_model
from ..utils.state_dict import (StateDictMismatch, compare_state_dicts,
                                strip_module_prefix)


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes differ from the model's."""


def _read(checkpoint: Union[str, dict],
          source: Optional[str]) -> Tuple[dict, str]:
    if isinstance(checkpoint, dict):
        return checkpoint, source or 'the given checkpoint dict'
    return read_checkpoint(checkpoint), source or checkpoint


def model_state_of(checkpoint: dict) -> dict:
    """The state dict inside a checkpoint dict (``state_dict``, or the dict
    itself for a bare state dict), without DDP's ``module.`` prefixes."""
    return strip_module_prefix(checkpoint.get('state_dict', checkpoint))


def mismatch_message(source: str, mismatch: StateDictMismatch,
                     model_keys, what: str = 'the model built from the '
                     'config') -> str:
    """The error text for a checkpoint that does not fit a model."""
    if mismatch.looks_backbone_only(model_keys):
        hint = (f'{source} looks like the weights of a backbone alone (a '
                "pretrained ViT: the model's backbone keys without "
                "'backbone.'): give it as "
                'model.backbone.init_cfg.checkpoint, not as a trained '
                'checkpoint.')
    else:
        hint = ('Use the config and --cfg-options it was trained with '
                '(num_prompts, num_classes, tune_params... must match).')
    return (f'{source} does not match {what}:\n{mismatch.describe()}\n'
            + hint)


def load_model_checkpoint(model: nn.Module,
                          checkpoint: Union[str, dict],
                          source: Optional[str] = None) -> dict:
    """Load a full or PEFT checkpoint into an already built model, strictly.

    Full checkpoint (``tools/train.py``): every key of the model must be in
    it at the model's shape, and nothing else (``num_batches_tracked`` may
    be missing), else nothing is loaded. PEFT file (``tools/export_peft.py``):
    the base ViT is loaded through the backbone's ``init_cfg``
    (``model.init_weights()``), then the file on top after its base
    fingerprint is checked (``load_peft``).

    Args:
        model: segmentor or classifier, possibly inside DDP / TTA wrappers
            (``runner.model``).
        checkpoint: a path (or URL) or an already loaded checkpoint dict.
        source: its name in messages (default: the path).
    Raises:
        CheckpointMismatchError: missing, unexpected or differently shaped
            keys (grouped and named).
        mmseg_davpt.utils.checkpoint_file.CheckpointFileError: the file is
            not a checkpoint.
        FileNotFoundError / ValueError: a PEFT file whose base ViT is not
            configured, or whose fingerprint differs.
    Returns:
        The checkpoint dict.
    """
    from mmengine.runner import load_state_dict
    ckpt, source = _read(checkpoint, source)
    target = unwrap_model(model)
    if is_peft_checkpoint(ckpt):
        check_base_init_cfg(getattr(target.backbone, 'init_cfg', None),
                            source, ckpt['meta'][PEFT_META_KEY])
        target.init_weights()
        load_peft(target, ckpt, source=source)
        return ckpt
    state = model_state_of(ckpt)
    own = target.state_dict()
    mismatch = compare_state_dicts(state, own)
    if mismatch:
        raise CheckpointMismatchError(
            mismatch_message(source, mismatch, own))
    load_state_dict(target, state, strict=True)
    return ckpt


def build_model_from_checkpoint(cfg: Config,
                                checkpoint: Union[str, dict],
                                source: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` and load a full or PEFT checkpoint into it
    (``load_model_checkpoint``).

    Full: the backbone's ``init_cfg`` is dropped (every weight comes from the
    checkpoint; the pretrained file need not exist). PEFT: the config's
    ``init_cfg`` must load the base ViT. Sets ``model.dataset_meta``
    (checkpoint meta, else the config's test dataset) and ``model.cfg``. The
    model stays on the CPU in train mode.
    """
    from .inference import config_dataset_meta
    ckpt, source = _read(checkpoint, source)
    build_cfg = copy.deepcopy(cfg)  # leave the caller's config as is
    build_cfg.model.pop('pretrained', None)
    build_cfg.model.train_cfg = None
    if not is_peft_checkpoint(ckpt):
        build_cfg.model.backbone.init_cfg = None
    model = build_model(build_cfg)
    load_model_checkpoint(model, ckpt, source)
    dataset_meta = (ckpt.get('meta') or {}).get('dataset_meta')
    if dataset_meta and dataset_meta.get('classes') is not None:
        model.dataset_meta = dict(classes=dataset_meta['classes'],
                                  palette=dataset_meta.get('palette'))
    else:
        model.dataset_meta = config_dataset_meta(cfg)
    model.cfg = cfg
    return model
