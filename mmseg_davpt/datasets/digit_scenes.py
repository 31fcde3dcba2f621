"""MMSegmentation dataset class of the generated digit scenes."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..digits.scenes import SCENE_CLASSES, SCENE_PALETTE


@DATASETS.register_module()
class DigitScenesDataset(BaseSegDataset):
    """Digit scenes (``mmseg_davpt.digits.make_digit_scenes``): label 0 is
    the background, a real class (not the ignore index); 1-5 are digits
    5-9."""

    METAINFO = dict(classes=SCENE_CLASSES, palette=SCENE_PALETTE)

    def __init__(self, img_suffix='.png', seg_map_suffix='.png',
                 reduce_zero_label=False, **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)
