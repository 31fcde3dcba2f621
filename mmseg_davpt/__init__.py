"""mmseg_davpt: DA-VPT (Distribution-Aware Visual Prompt Tuning) for OpenMMLab.

Importing this package registers its modules in MMSegmentation's registries,
so configs only need ``custom_imports = dict(imports=['mmseg_davpt'])``.
"""
from .version import __version__
from .utils.stack import check_openmmlab_stack

check_openmmlab_stack()

from . import datasets, engine, models  # noqa: E402,F401  (registers)

__all__ = ['__version__']
