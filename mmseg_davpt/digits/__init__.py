"""A miniature transfer experiment on scikit-learn's real handwritten digits:
a tiny ViT pretrained on digits 0-4 (the "ImageNet" of this world) and
downstream tasks on the unseen digits 5-9 (docs/digits_transfer_cls.md,
docs/digits_transfer_seg.md)."""
from .images import digit_images
from .scenes import SCENE_CLASSES, make_digit_scenes

# Classes the upstream ViT is pretrained on, and the unseen downstream ones.
UPSTREAM_CLASSES = (0, 1, 2, 3, 4)
DOWNSTREAM_CLASSES = (5, 6, 7, 8, 9)
# Input size of the digits ViT (8x8 scans upsampled bilinearly).
DIGITS_IMG_SIZE = 32
# Pixel mean / std (0-255, per RGB channel: grey replicated) of the upstream
# images, as ImageNet's come from its training set. Pretraining normalises
# with these and every digits config's data preprocessor repeats them.
DIGITS_MEAN = [77.76, 77.76, 77.76]
DIGITS_STD = [83.29, 83.29, 83.29]

__all__ = ['digit_images', 'make_digit_scenes', 'SCENE_CLASSES',
           'UPSTREAM_CLASSES', 'DOWNSTREAM_CLASSES', 'DIGITS_IMG_SIZE',
           'DIGITS_MEAN', 'DIGITS_STD']
