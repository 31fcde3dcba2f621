"""Where the project's ``configs/`` folder is: next to the package in a
source checkout, or inside it (``mmseg_davpt/.mim/configs``, copied there
by ``setup.py`` at build time, as OpenMMLab packages ship theirs) after a
plain ``pip install .``."""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: ``configs/`` of a source checkout (editable installs, the repository)
SOURCE_CONFIGS = osp.join(osp.dirname(PACKAGE_DIR), 'configs')
#: ``configs/`` shipped inside the installed package
PACKAGED_CONFIGS = osp.join(PACKAGE_DIR, '.mim', 'configs')


def configs_root() -> str:
    """The ``configs/`` folder: the source checkout's, else the packaged
    copy. ``FileNotFoundError`` naming both places when neither exists."""
    for root in (SOURCE_CONFIGS, PACKAGED_CONFIGS):
        if osp.isdir(root):
            return root
    raise FileNotFoundError(
        f'the project configs are neither in a source checkout '
        f'({SOURCE_CONFIGS}) nor shipped with the package '
        f'({PACKAGED_CONFIGS}); reinstall with `pip install .` from the '
        'repository, or pass explicit config paths')


def find_config(path: str) -> str:
    """``path`` if it names a file; else, for a ``configs/...`` path, the
    same file under ``configs_root()`` (so ``configs/davpt_setr_ade20k.py``
    works from any directory and outside a checkout).

    Raises:
        FileNotFoundError: no such file, naming where it was looked for.
    """
    path = str(path)
    if osp.isfile(path):
        return path
    parts = osp.normpath(path).split(osp.sep)
    if parts[0] == 'configs' and len(parts) > 1:
        try:
            candidate = osp.join(configs_root(), *parts[1:])
        except FileNotFoundError as err:
            raise FileNotFoundError(f'no config at {path}: {err}') from None
        if osp.isfile(candidate):
            return candidate
        raise FileNotFoundError(f'no config at {path} (nor at {candidate})')
    raise FileNotFoundError(f'no config at {path}')
