"""The PEFT file: writing it, recognising it and putting it back on a model
whose base ViT is loaded (layout in the package docstring)."""
import os
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn

from ..utils.checkpoint_file import read_checkpoint
from ..utils.model import unwrap_model
from ..utils.state_dict import compare_state_dicts, describe_keys
from ..version import __version__
from .fingerprint import base_fingerprint
from .state import peft_state_dict

PEFT_META_KEY = 'peft'


def is_peft_checkpoint(ckpt: dict) -> bool:
    """Whether a loaded checkpoint dict was written by ``save_peft``."""
    return isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict) \
        and isinstance(ckpt['meta'].get(PEFT_META_KEY), dict) \
        and 'base_fingerprint' in ckpt['meta'][PEFT_META_KEY]


def peft_record(path: str) -> Optional[dict]:
    """The ``meta['peft']`` record of the checkpoint file at ``path``, or
    ``None`` when it is not a PEFT checkpoint.

    Memory-maps the file, so asking about a 1.3 GB full checkpoint does not
    read its tensors. A file that is not a readable checkpoint counts as not
    PEFT (loading it later reports what it is).
    """
    try:
        ckpt = read_checkpoint(path, mmap=True)
    except (OSError, ValueError):
        return None
    return ckpt['meta'][PEFT_META_KEY] if is_peft_checkpoint(ckpt) else None


def check_base_init_cfg(init_cfg: Optional[dict], source: str,
                        record: Optional[dict] = None) -> None:
    """Raise unless a backbone ``init_cfg`` will load a base ViT for the
    PEFT checkpoint ``source`` (``type='Pretrained'`` and an existing local
    file or a URL). ``record`` (its ``meta['peft']``) names the base it was
    trained on in the message."""
    trained_on = (record or {}).get('base_checkpoint')
    hint = (f'It was trained on {trained_on}. ' if trained_on else '') + \
        'Set --cfg-options model.backbone.init_cfg.checkpoint=PATH.'
    if not isinstance(init_cfg, dict) or \
            init_cfg.get('type') != 'Pretrained':
        raise ValueError(
            f'{source} is a PEFT checkpoint: it needs the base ViT loaded '
            "through the backbone's init_cfg (type='Pretrained', "
            f'checkpoint=PATH), but the config has init_cfg={init_cfg}. '
            + hint)
    path = str(init_cfg.get('checkpoint'))
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'{source} is a PEFT checkpoint, so the base ViT {path} '
            f'(backbone init_cfg) must exist. ' + hint)


def save_peft(model: nn.Module,
              path: str,
              base_checkpoint: Optional[str],
              meta: Optional[dict] = None) -> dict:
    """Write a PEFT checkpoint of ``model`` to ``path``.

    Args:
        model: the segmentor or classifier (wrappers are unwrapped).
        path: output file; its folder is created.
        base_checkpoint: path of the pretrained ViT the model was built on
            (recorded for the error message when the base does not match).
        meta: extra ``meta`` entries, e.g. the full checkpoint's
            ``dataset_meta`` (class names and palette for inference).
    Returns:
        The dict that was saved.
    """
    state = {k: v.detach().cpu() for k, v in peft_state_dict(model).items()}
    meta = dict(meta or {})
    meta[PEFT_META_KEY] = dict(
        base_checkpoint=base_checkpoint,
        base_fingerprint=base_fingerprint(model),
        num_tensors=len(state),
        mmseg_davpt_version=__version__)
    ckpt = dict(state_dict=state, meta=meta)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(ckpt, path)
    return ckpt


def _check_keys(model: nn.Module, state: dict, source: str) -> None:
    """The file must hold exactly the model's trained part, at its shapes."""
    own = model.state_dict()
    mismatch = compare_state_dicts(state, own)
    if mismatch.unexpected:
        raise ValueError(
            f'{source} holds {len(mismatch.unexpected)} tensors this model '
            'lacks (another config?): ' + describe_keys(mismatch.unexpected))
    missing = [k for k in peft_state_dict(model) if k not in state]
    if missing:
        raise ValueError(
            f'{source} lacks {len(missing)} trained tensors of this model, '
            'which would stay at their random init (another config?): '
            + describe_keys(missing))
    if mismatch.shapes:
        raise ValueError(f'shape mismatch loading {source} (another '
                         f'config?):\n{mismatch.describe()}')


def load_peft(model: nn.Module,
              path_or_dict: Union[str, dict],
              strict_base: bool = True,
              source: Optional[str] = None) -> dict:
    """Put a PEFT checkpoint on top of a model whose base ViT is loaded.

    Call it after ``model.init_weights()`` has loaded the pretrained ViT
    through the backbone's ``init_cfg``.

    Args:
        model: the segmentor or classifier (wrappers are unwrapped), built
            from the config the PEFT file was trained with.
        path_or_dict: a file written by ``save_peft`` or its loaded dict.
        strict_base: refuse a model whose frozen weights differ from those
            recorded in the file (default). ``False`` only warns.
        source: name of the checkpoint in messages (default: its path).
    Raises:
        ValueError: not a PEFT checkpoint; the base fingerprint differs; the
            file and the model disagree on the PEFT keys or their shapes.
    Returns:
        The loaded checkpoint dict (its ``meta`` holds ``dataset_meta``).
    """
    from mmengine.logging import print_log
    if isinstance(path_or_dict, dict):
        ckpt, source = path_or_dict, source or 'the given checkpoint dict'
    elif not osp.isfile(path_or_dict):
        raise FileNotFoundError(f'no PEFT checkpoint at {path_or_dict}')
    else:
        ckpt, source = read_checkpoint(path_or_dict), source or path_or_dict
    if not is_peft_checkpoint(ckpt):
        raise ValueError(
            f'{source} is not a PEFT checkpoint (no meta.peft record); load '
            'a full checkpoint with mmseg_davpt.apis.load_model_checkpoint '
            'instead')
    model = unwrap_model(model)
    record = ckpt['meta'][PEFT_META_KEY]
    expected = record['base_fingerprint']
    actual = base_fingerprint(model)
    if actual != expected:
        msg = (
            f'{source} was trained on other base weights.\n'
            f'  recorded base checkpoint: {record.get("base_checkpoint")}\n'
            f'  recorded base fingerprint: {expected}\n'
            f'  this model\'s frozen weights: {actual}\n'
            'Load the recorded base ViT before the PEFT file: point the '
            "config's model.backbone.init_cfg.checkpoint at it (e.g. "
            '--cfg-options model.backbone.init_cfg.checkpoint=PATH) and call '
            'model.init_weights() first; also check that the config is the '
            'one the file was trained with.')
        if strict_base:
            raise ValueError(msg)
        print_log('WARNING: ' + msg, logger='current', level=30)
    state = ckpt['state_dict']
    _check_keys(model, state, source)
    model.load_state_dict(state, strict=False)  # the base stays as loaded
    print_log(
        f'Loaded PEFT checkpoint {source}: {len(state)} tensors on base '
        f'{record.get("base_checkpoint")} (fingerprint {actual[:12]})',
        logger='current')
    return ckpt
