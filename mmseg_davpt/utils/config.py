"""The one config loader of the package and its command-line tools."""
import copy
import os.path as osp
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config

from .shipped_configs import find_config


def load_config(config: Union[str, Path, Config],
                cfg_options: Optional[dict] = None) -> Config:
    """A config file (or a copy of a ``Config``) with ``--cfg-options``
    merged in. A ``configs/...`` path that does not exist from the current
    directory is looked up in the shipped configs (``find_config``).

    Raises:
        FileNotFoundError: no file at ``config``.
        TypeError: ``config`` is neither a path nor a ``Config``.
    """
    if isinstance(config, (str, Path)):
        config = Config.fromfile(find_config(config))
    elif isinstance(config, Config):
        config = copy.deepcopy(config)  # leave the caller's config as is
    else:
        raise TypeError(f'config must be a path or a Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return config


def load_run_config(path: str, launcher: str = 'none',
                    cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None) -> Config:
    """``load_config`` plus what a Runner needs: the launcher and the work
    dir (``work_dir``, else the config's, else
    ``./work_dirs/<config name>``, as MMSegmentation's tools do)."""
    cfg = load_config(path)
    cfg.launcher = launcher
    if cfg_options:  # after the launcher, so they can override it
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg
