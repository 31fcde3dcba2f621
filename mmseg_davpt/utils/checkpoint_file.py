"""Reading a checkpoint file, with an error that says what the file is when
it is not a checkpoint (empty, text, truncated...) instead of ``EOFError`` or
``KeyError: 101`` from deep inside ``torch.load``."""
import os.path as osp

import torch

# What torch.save writes: a zip archive (since torch 1.6), or a bare pickle
# (legacy format, protocol 2+ starts with the PROTO opcode).
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'


class CheckpointFileError(ValueError):
    """A checkpoint path that does not hold a readable checkpoint."""


def _head(path: str, size: int = 256) -> bytes:
    with open(path, 'rb') as f:
        return f.read(size)


def _describe_unreadable(path: str) -> str:
    """What the file at ``path`` looks like, for the error message."""
    size = osp.getsize(path)
    if size == 0:
        return 'the file is empty (0 bytes)'
    head = _head(path)
    if head.startswith((_ZIP_MAGIC, _PICKLE_PROTO)):
        return (f'it looks like a PyTorch file ({size} bytes) but cannot be '
                'read: truncated or corrupted (an interrupted save or copy?)')
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'it is not a PyTorch file ({size} bytes of other binary data)'
    if all(c.isprintable() or c.isspace() for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ''
        return (f'it is a text file ({size} bytes, starting {first!r}), '
                'not a PyTorch checkpoint')
    return f'it is not a PyTorch file ({size} bytes)'


def read_checkpoint(path: str, mmap: bool = False) -> dict:
    """Load the checkpoint at ``path`` (a local file, or a URL /
    ``open-mmlab://`` name through mmengine's ``CheckpointLoader``) onto the
    CPU.

    Args:
        path: checkpoint file or URL.
        mmap: memory-map a local file instead of reading it (cheap look at
            keys, shapes and ``meta`` of a large file).
    Returns:
        The loaded dict (a full checkpoint, a PEFT file or a bare state
        dict).
    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointFileError: the file is not a checkpoint; the message says
            what it is instead.
    """
    from mmengine.runner import CheckpointLoader
    local = '://' not in str(path)
    if local and not osp.isfile(path):
        raise FileNotFoundError(f'no checkpoint at {path}')
    try:
        if local and mmap:
            ckpt = torch.load(path, map_location='cpu', mmap=True,
                              weights_only=False)
        else:
            ckpt = CheckpointLoader.load_checkpoint(
                path, map_location='cpu', logger='current')
    except Exception as err:  # torch.load raises many types on bad input
        if not local:
            raise
        if mmap and _head(path, 1) == _PICKLE_PROTO:
            # the legacy (non-zip) format cannot be memory-mapped
            return read_checkpoint(path, mmap=False)
        what = _describe_unreadable(path)
        if what.startswith(('it looks like', 'it is not')):
            # torch's own words may tell which part is broken
            what += f' (torch.load: {type(err).__name__}: {str(err)[:200]})'
        raise CheckpointFileError(
            f'{path} is not a readable checkpoint: {what}') from err
    if not isinstance(ckpt, dict):
        raise CheckpointFileError(
            f'{path} holds a {type(ckpt).__name__}, not a checkpoint dict '
            "(a state dict or {'state_dict': ..., 'meta': ...})")
    return ckpt
