"""Checks on a checkpoint before mmengine resumes training from it.

mmengine's ``Runner.resume`` loads the weights non-strictly and fails later
with messages that do not name the cause: ``KeyError: 'message_hub'`` for a
PEFT or weights-only file, a tensor-size error inside the optimizer after
``num_prompts`` changed. These checks run first and say what is wrong.
"""
import torch.nn as nn

from ..peft import is_peft_checkpoint
from ..utils.checkpoint_file import read_checkpoint
from ..utils.model import unwrap_model
from ..utils.state_dict import compare_state_dicts
from .checkpoint import (CheckpointMismatchError, mismatch_message,
                         model_state_of)

# What Runner.resume reads besides the weights.
TRAINING_STATE_KEYS = ('meta', 'state_dict', 'message_hub')


def _optimizer_tensor_count(optimizer_state) -> int:
    """Parameters covered by a saved ``optimizer.state_dict()``, or -1 when
    the layout is not a single optimizer's."""
    if isinstance(optimizer_state, dict) and \
            'param_groups' in optimizer_state:
        return sum(len(g['params']) for g in optimizer_state['param_groups'])
    return -1


def check_resume_checkpoint(model: nn.Module, path: str) -> dict:
    """Raise unless training can resume from ``path`` with ``model``.

    Args:
        model: the model the Runner built (``runner.model``, wrappers
            allowed).
        path: checkpoint to resume from.
    Raises:
        FileNotFoundError / CheckpointFileError: no file, or not a
            checkpoint.
        ValueError: a PEFT file, or a file without training state.
        CheckpointMismatchError: keys or shapes differ from the model's, or
            the saved optimizer covers another number of trainable tensors.
    Returns:
        The checkpoint, memory-mapped (cheap to keep or drop).
    """
    ckpt = read_checkpoint(path, mmap=True)
    if is_peft_checkpoint(ckpt):
        raise ValueError(
            f'--resume: {path} is a PEFT checkpoint (written by '
            'tools/export_peft.py: trained tensors only, no optimizer, '
            'scheduler or iteration), so training cannot resume from it. '
            'Resume from the full checkpoint of the run (iter_*.pth / '
            'epoch_*.pth in its work dir); evaluate a PEFT file with '
            'tools/test.py.')
    lacking = [k for k in TRAINING_STATE_KEYS if k not in ckpt]
    if not lacking and not {'iter', 'epoch'} <= set(ckpt['meta']):
        lacking = ['meta.iter / meta.epoch']
    if lacking:
        raise ValueError(
            f'--resume: {path} holds no training state ({", ".join(lacking)} '
            'missing): it was not saved by a training run (tools/train.py), '
            'so training cannot resume from it. To start a new run from its '
            f'weights, train without --resume and with --cfg-options '
            f'load_from={path}.')
    target = unwrap_model(model)
    own = target.state_dict()
    mismatch = compare_state_dicts(model_state_of(ckpt), own)
    if mismatch:
        raise CheckpointMismatchError(
            '--resume: ' + mismatch_message(
                path, mismatch, own, 'the model built from the config '
                '(settings changed since it was saved?)'))
    saved = _optimizer_tensor_count(ckpt.get('optimizer'))
    trainable = sum(1 for p in target.parameters() if p.requires_grad)
    if saved >= 0 and saved != trainable:
        raise CheckpointMismatchError(
            f'--resume: the optimizer state in {path} covers {saved} '
            f'tensors, but this model trains {trainable} (tune_params, '
            'freeze_pretrained or the heads changed since it was saved?). '
            'Resume with the settings of the run.')
    return ckpt
