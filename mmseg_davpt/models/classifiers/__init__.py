from .davpt_image_classifier import DAVPTImageClassifier

__all__ = ['DAVPTImageClassifier']
