"""Reject label maps that would silently mis-train or mis-score a model.

Without this check MMSegmentation accepts, and gets wrong:

* ids outside ``[0, num_classes)`` that are not the ignore index: IoUMetric
  drops them silently (mIoU is skewed), training fails deep inside the loss
  with a torch ``IndexError`` (or a CUDA assert) that names no file;
* a label map of another size than its image: training supervises
  misaligned pixels, evaluation crashes inside IoUMetric;
* RGB colour-coded label maps (3 or 4 channels), a common conversion mistake.
"""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

# at most this many offending ids are named in an error
_MAX_IDS_SHOWN = 10


@TRANSFORMS.register_module()
class CheckSegAnnotation(BaseTransform):
    """Check ``results['gt_seg_map']`` against its image; raise
    ``ValueError`` naming ``seg_map_path`` and ``img_path`` when it is bad.

    Place it right after ``LoadAnnotations`` (which applies
    ``reduce_zero_label`` and the dataset's ``label_map``), so ids are
    checked as the model will see them. The map is compared with the image
    as loaded (``ori_shape``), so a ``Resize`` of the image before
    ``LoadAnnotations`` (test pipelines) is fine.

    Cost: one ``min`` / ``max`` pass over the map (plus one masked pass when
    the map contains the ignore index); the offending ids are only computed
    on failure.

    Keys: ``gt_seg_map`` ``(H, W)`` (without it, e.g. at inference, the
    results pass unchanged); ``ori_shape`` or ``img``; ``seg_map_path`` and
    ``img_path`` (named in errors).

    Args:
        num_classes (int): class ids must lie in ``[0, num_classes)``.
        ignore_index (int): the one other id allowed (unlabelled pixels).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'CheckSegAnnotation: num_classes must be a '
                             f'positive int, got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        seg = results.get('gt_seg_map')
        if seg is None:
            # inference: mmseg's inference_model / MMSegInferencer drop
            # LoadAnnotations from the test pipeline, and keep this
            return results
        where = (f"label map {results.get('seg_map_path')} "
                 f"(image {results.get('img_path')})")
        seg = self._check_shape(seg, results, where)
        results['gt_seg_map'] = seg
        self._check_ids(seg, where, results.get('reduce_zero_label'))
        return results

    @staticmethod
    def _image_shape(results: dict) -> Optional[Sequence[int]]:
        shape = results.get('ori_shape')
        if shape is None and results.get('img') is not None:
            shape = results['img'].shape[:2]
        return None if shape is None else tuple(int(s) for s in shape[:2])

    def _check_shape(self, seg: np.ndarray, results: dict,
                     where: str) -> np.ndarray:
        """The map, as ``(H, W)``; raises on channels or a size mismatch."""
        img_shape = self._image_shape(results)
        if seg.ndim == 3 and seg.shape[2] in (3, 4):
            raise ValueError(
                f'{where} has shape {seg.shape}: it looks like an RGB colour-'
                f'coded label map: convert to class-index PNG (one channel, '
                f'pixel value = class id, {self.ignore_index} = unlabelled; '
                f'e.g. with a palette lookup, as MMSegmentation\'s '
                f'tools/dataset_converters do)')
        if (seg.ndim == 1 and img_shape is not None
                and seg.size == img_shape[0] * img_shape[1]
                and 1 in img_shape):
            # LoadAnnotations squeezes a 1-pixel-high or -wide map to 1-D
            seg = seg.reshape(img_shape)
        if seg.ndim != 2:
            raise ValueError(
                f'{where} has shape {seg.shape}; a label map must be one '
                f'channel (H, W) of class indices')
        if img_shape is not None and seg.shape != img_shape:
            raise ValueError(
                f'{where}: label map is {seg.shape[0]}x{seg.shape[1]} (HxW) '
                f'but the image is {img_shape[0]}x{img_shape[1]}; every '
                f'label map must have its image\'s size (wrong file paired, '
                f'or one of them was resized)')
        return seg

    def _check_ids(self, seg: np.ndarray, where: str,
                   reduce_zero_label: Optional[bool]) -> None:
        if seg.size == 0:
            return
        lo, hi = int(seg.min()), int(seg.max())
        if lo >= 0 and hi < self.num_classes:
            return  # the common case: one min / max pass
        bad = (seg < 0) | (seg >= self.num_classes)
        bad &= seg != self.ignore_index
        if not bad.any():
            return
        ids, counts = np.unique(seg[bad], return_counts=True)
        shown = ', '.join(f'{i} ({c} px)' for i, c in
                          zip(ids[:_MAX_IDS_SHOWN].tolist(),
                              counts[:_MAX_IDS_SHOWN].tolist()))
        if len(ids) > _MAX_IDS_SHOWN:
            shown += f', ... ({len(ids)} ids in all)'
        hint = ''
        if not reduce_zero_label and ids.tolist() == [self.num_classes]:
            hint = (f' Ids 1..{self.num_classes} with 0 = unlabelled need '
                    'reduce_zero_label=True on the dataset.')
        raise ValueError(
            f'{where} has class ids outside [0, {self.num_classes}) that '
            f'are not the ignore index {self.ignore_index}: {shown}. Check '
            f'num_classes, the dataset\'s reduce_zero_label (now '
            f'{reduce_zero_label}; LoadAnnotations applies it before this '
            f'check) and that the file stores class indices.{hint}')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
