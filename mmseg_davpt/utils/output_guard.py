"""What every writing tool checks before it starts: its outputs must not be
any of its inputs (same path, or the same file through another path: a
symbolic or hard link), must not be a folder where a file is meant, and an
existing file is replaced only when the user says so (``--force``)."""
import os
import os.path as osp
from typing import Iterable, Optional

#: image extensions OpenCV / Pillow write
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp')


class OutputPathError(ValueError):
    """An output path that would destroy an input or an existing file."""


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: equal after resolving
    links, or one inode (hard links)."""
    if osp.realpath(a) == osp.realpath(b):
        return True
    try:
        return osp.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_output_file(path: str,
                      inputs: Iterable[Optional[str]] = (),
                      force: bool = False,
                      option: str = 'output',
                      force_flag: str = '--force',
                      extensions: Optional[Iterable[str]] = None) -> None:
    """Refuse, before any work, to write the file ``path``.

    Args:
        path: the file the tool will write.
        inputs: the files the tool reads (``None`` entries are skipped);
            writing over one of them is refused even with ``force``.
        force: replace an existing file (never an input).
        option: how the user named ``path`` (e.g. ``'--out'``), for messages.
        force_flag: the option that sets ``force``, for messages.
        extensions: allowed file name endings (lower case), if restricted.

    Raises:
        OutputPathError: naming ``option``, the path and what to do.
    """
    if osp.isdir(path):
        raise OutputPathError(f'{option} {path!r} is a folder; give a file '
                              'name')
    if extensions is not None:
        extensions = tuple(extensions)
        if not path.lower().endswith(extensions):
            raise OutputPathError(
                f'{option} {path!r} needs one of the extensions '
                f'{", ".join(extensions)} (the format is taken from it)')
    for source in inputs:
        if source and osp.exists(source) and same_file(path, source):
            raise OutputPathError(
                f'{option} {path!r} is the input {source!r} (same file); '
                'writing it would destroy the input. Choose another path.')
    if osp.lexists(path) and not force:
        raise OutputPathError(
            f'{option} {path!r} already exists; pass {force_flag} to replace '
            'it, or choose another path')


def check_output_folder(folder: str, names: Iterable[str],
                        inputs: Iterable[Optional[str]] = (),
                        force: bool = False, option: str = 'output folder',
                        force_flag: str = '--force') -> None:
    """``check_output_file`` for each of ``names`` inside ``folder`` (the
    files the tool will write there); ``folder`` must not be a file."""
    if osp.exists(folder) and not osp.isdir(folder):
        raise OutputPathError(f'{option} {folder!r} is a file, not a folder')
    inputs = [i for i in inputs if i]
    for name in names:
        check_output_file(osp.join(folder, name), inputs, force,
                          f'{option} {folder!r}: file', force_flag)


def make_parent(path: str) -> None:
    """Create the folder ``path`` will be written in."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
