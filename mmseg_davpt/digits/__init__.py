"""The digits transfer experiment: scikit-learn's digit scans, classes 0-4
upstream, classes 5-9 downstream."""
from .scenes import SCENE_CLASSES, make_digit_scenes

__all__ = ['SCENE_CLASSES', 'make_digit_scenes']
