"""Config loading shared by the command-line tools."""
import os.path as osp
from typing import Optional


def load_run_config(path: str, launcher: str = 'none',
                    cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None):
    """Read ``path``, apply ``--cfg-options``, and set the launcher and work
    dir (default ``./work_dirs/<config name>``), as MMSegmentation's tools
    do."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg
