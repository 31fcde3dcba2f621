"""PEFT checkpoints: save and load only what prompt tuning changes.

A DA-VPT model is a frozen pretrained ViT plus a small trained part (prompts,
optionally tuned biases, the heads, BN statistics of the heads and the class
-> prompt mapping buffers). A full checkpoint stores the frozen ViT again for
every run (about 1.3 GB for ViT-L); a PEFT checkpoint stores only the trained
part (about 55 MB) and a fingerprint of the frozen weights it was trained on,
so it can be put back on top of the same base ViT and refuses any other.

File layout (an ordinary mmengine checkpoint, loadable with ``torch.load``)::

    {'state_dict': {key: tensor, ...},        # keys as in model.state_dict()
     'meta': {'peft': {'base_checkpoint': str | None,
                       'base_fingerprint': 'sha256 hex',
                       'num_tensors': int,
                       'mmseg_davpt_version': str},
              'dataset_meta': ..., ...}}      # the full checkpoint's meta

Typical use::

    model.init_weights()             # loads the base ViT (backbone init_cfg)
    load_peft(model, 'davpt_peft.pth')
"""
import hashlib
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .version import __version__

PEFT_META_KEY = 'peft'

# State-dict keys that pack several parameters into one tensor: the key's
# last name -> the parameter names behind it in the same module.
# ``FusedSelfAttention`` keeps q/k/v biases as three parameters (so DA-VPT+
# can train k and v only) but saves them as ``nn.MultiheadAttention``'s packed
# ``in_proj_bias``.
PACKED_KEYS = {'in_proj_bias': ('q_bias', 'k_bias', 'v_bias')}


def _unwrap(model: nn.Module) -> nn.Module:
    """The segmentor inside DDP-style wrappers (``.module``)."""
    from mmengine.model import is_model_wrapper
    while is_model_wrapper(model):
        model = model.module
    return model


def _params_behind_key(key: str, params: Dict[str, nn.Parameter]
                       ) -> Optional[List[nn.Parameter]]:
    """The parameters whose values a state-dict ``key`` holds, or ``None``
    when the key is not a parameter (a buffer or something unknown)."""
    if key in params:
        return [params[key]]
    prefix, _, name = key.rpartition('.')
    if name in PACKED_KEYS:
        parts = [params.get(f'{prefix}.{p}' if prefix else p)
                 for p in PACKED_KEYS[name]]
        if all(p is not None for p in parts):
            return parts
    return None


def _is_base_key(key: str, params: Dict[str, nn.Parameter]) -> bool:
    """Whether ``key`` belongs to the frozen base ViT: a backbone parameter
    (or packed parameter) with no trainable part, or a backbone buffer.

    Everything else is PEFT state. That includes frozen parameters outside
    the backbone (none in our configs): the base checkpoint does not hold
    them, so only the PEFT file can restore them.
    """
    if not key.startswith('backbone.'):
        return False
    behind = _params_behind_key(key, params)
    if behind is None:
        return True  # a backbone buffer: comes with the base weights
    return not any(p.requires_grad for p in behind)


def peft_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """What training changes, keyed as ``model.state_dict()``.

    Every parameter with ``requires_grad`` (prompts ``(N, D)``, tuned biases,
    heads), plus all buffers outside the backbone (BN running statistics of
    the heads, ``metric_guidance.mapping.*``). A packed q/k/v bias
    ``backbone.layers.N.attn.attn.in_proj_bias`` ``(3D,)`` is saved whole as
    soon as one of its parts trains (DA-VPT+ ``tune_biases='kv'``); its frozen
    q part equals the base's, so loading it back changes nothing there.

    Returns:
        ``{key: tensor}`` (detached, on the model's device).
    """
    model = _unwrap(model)
    params = dict(model.named_parameters())
    return {
        k: v
        for k, v in model.state_dict().items() if not _is_base_key(k, params)
    }


def _frozen_base_tensors(model: nn.Module
                         ) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of the frozen backbone, sorted by name.

    Parameters by their own (split) names, so the frozen q bias is included
    and trained k/v biases are not; persistent buffers as well.
    """
    backbone = _unwrap(model).backbone
    tensors = {
        n: p
        for n, p in backbone.named_parameters() if not p.requires_grad
    }
    for module_name, module in backbone.named_modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and \
                    name not in module._non_persistent_buffers_set:
                tensors[f'{module_name}.{name}' if module_name else name] = buf
    for name in sorted(tensors):
        yield name, tensors[name]


def base_fingerprint(model: nn.Module) -> str:
    """sha256 (hex) over the frozen backbone's tensors: names, dtypes, shapes
    and bytes, in sorted name order. Equal fingerprints mean bit-identical
    base weights, independent of the device they sit on."""
    digest = hashlib.sha256()
    for name, tensor in _frozen_base_tensors(model):
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}|{t.dtype}|{tuple(t.shape)}\n'.encode())
        # raw bytes through a uint8 view: works for every dtype, including
        # those numpy lacks (bfloat16)
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def is_peft_checkpoint(ckpt: dict) -> bool:
    """Whether a loaded checkpoint dict was written by ``save_peft``."""
    return isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict) \
        and isinstance(ckpt['meta'].get(PEFT_META_KEY), dict) \
        and 'base_fingerprint' in ckpt['meta'][PEFT_META_KEY]


def peft_record(path: str) -> Optional[dict]:
    """The ``meta['peft']`` record of the checkpoint file at ``path``, or
    ``None`` when it is not a PEFT checkpoint.

    Memory-maps the file when it can, so asking about a 1.3 GB full
    checkpoint does not read its tensors. A file that is not a readable
    checkpoint counts as not PEFT (the normal loader then reports why).
    """
    for kwargs in (dict(mmap=True), dict()):
        try:
            ckpt = torch.load(path, map_location='cpu', weights_only=False,
                              **kwargs)
        except Exception:  # legacy format (no mmap), empty, not torch...
            continue
        return ckpt['meta'][PEFT_META_KEY] if is_peft_checkpoint(ckpt) \
            else None
    return None


def is_peft_file(path: str) -> bool:
    """Whether the checkpoint file at ``path`` is a PEFT checkpoint."""
    return peft_record(path) is not None


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
        model: the segmentor (wrappers are unwrapped).
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
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    torch.save(ckpt, path)
    return ckpt


def init_base_weights(model: nn.Module) -> None:
    """``model.init_weights()`` (heads at their init, the base ViT loaded
    through the backbone's ``init_cfg``) without flooding the console.

    Outside a Runner, mmengine prints one INFO line per parameter unless the
    current logger has a ``FileHandler``; a throw-away one to ``os.devnull``
    takes that dump, while other messages (which checkpoint was loaded) still
    reach the console.
    """
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    sink = logging.FileHandler(os.devnull)
    logger.addHandler(sink)
    try:
        _unwrap(model).init_weights()
    finally:
        logger.removeHandler(sink)
        sink.close()


def _read(path_or_dict: Union[str, dict]) -> Tuple[dict, str]:
    if isinstance(path_or_dict, dict):
        return path_or_dict, 'the given checkpoint dict'
    if not osp.isfile(path_or_dict):
        raise FileNotFoundError(f'no PEFT checkpoint at {path_or_dict}')
    ckpt = torch.load(path_or_dict, map_location='cpu', weights_only=False)
    return ckpt, path_or_dict


def load_peft(model: nn.Module,
              path_or_dict: Union[str, dict],
              strict_base: bool = True,
              source: Optional[str] = None) -> dict:
    """Put a PEFT checkpoint on top of a model whose base ViT is loaded.

    Call it after ``model.init_weights()`` has loaded the pretrained ViT
    through the backbone's ``init_cfg``.

    Args:
        model: the segmentor, built from the config the PEFT file was
            trained with.
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
    ckpt, read_from = _read(path_or_dict)
    source = source or read_from
    if not is_peft_checkpoint(ckpt):
        raise ValueError(
            f'{source} is not a PEFT checkpoint (no meta.peft record); load '
            'a full checkpoint with mmengine.runner.load_checkpoint instead')
    model = _unwrap(model)
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
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    if unknown:
        raise ValueError(
            f'{source} holds {len(unknown)} tensors this model lacks (another '
            f'config?): {unknown}')
    wanted = peft_state_dict(model)
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise ValueError(
            f'{source} lacks {len(missing)} trained tensors of this model, '
            f'which would stay at their random init (another config?): '
            f'{missing}')
    mismatched = [
        f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state.items() if v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(f'shape mismatch loading {source}:\n  ' +
                         '\n  '.join(mismatched))
    model.load_state_dict(state, strict=False)
    print_log(
        f'Loaded PEFT checkpoint {source}: {len(state)} tensors on base '
        f'{record.get("base_checkpoint")} (fingerprint {actual[:12]})',
        logger='current')
    return ckpt
