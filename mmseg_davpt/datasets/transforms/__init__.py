from .check_seg_annotation import CheckSegAnnotation

__all__ = ['CheckSegAnnotation']
