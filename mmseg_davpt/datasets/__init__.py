from .cls_demo import generate_cls_folders
from .demo_shapes import DemoShapesDataset, generate_demo_shapes
from .digit_scenes import DigitScenesDataset
from .samplers import ClassBalancedSampler, check_balanced_loader
from .transforms import CheckSegAnnotation

__all__ = [
    'DemoShapesDataset', 'DigitScenesDataset', 'generate_demo_shapes',
    'generate_cls_folders',
    'CheckSegAnnotation', 'ClassBalancedSampler', 'check_balanced_loader'
]

# The classification datasets build on mmpretrain, which the segmentation
# side does not need: register them only when it is installed.
try:
    import mmpretrain  # noqa: F401
except ImportError:
    pass
else:
    from .fgvc import FGVC, FGVC_TASKS
    from .vtab1k import VTAB1k, VTAB_TASKS
    __all__ += ['FGVC', 'FGVC_TASKS', 'VTAB1k', 'VTAB_TASKS']
