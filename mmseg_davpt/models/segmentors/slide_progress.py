"""Progress lines for slide inference over many crops.

``EncoderDecoder.slide_inference`` runs the model once per crop and says
nothing: a 2048x2048 image (36 crops of 512 at stride 341 on ViT-L) took
minutes on a CPU with no output. The mixin below counts the crops as
``encode_decode`` returns them and logs progress, leaving the computation
itself to mmseg (the logits are unchanged).
"""
import time

from mmengine.dist import get_rank
from mmengine.logging import print_log

# default of ``test_cfg.progress_min_crops``
PROGRESS_MIN_CROPS = 16


def num_slide_crops(img_hw, crop_hw, stride_hw) -> int:
    """How many crops ``EncoderDecoder.slide_inference`` runs over an input
    of ``img_hw`` (its window grid, last window flush with the border)."""
    count = 1
    for size, crop, stride in zip(img_hw, crop_hw, stride_hw):
        count *= max(size - crop + stride - 1, 0) // stride + 1
    return count


class _CropProgress:
    """Logs ``done/total`` about every tenth of the crops, with the elapsed
    time and an estimate of the time left."""

    def __init__(self, total: int, description: str):
        self.total, self.done = total, 0
        self.every = max(1, round(total / 10))
        self.start = time.monotonic()
        print_log(f'slide inference: {total} crops {description}',
                  logger='current')

    def step(self) -> None:
        self.done += 1
        if self.done % self.every and self.done != self.total:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        print_log(f'slide inference: {self.done}/{self.total} crops, '
                  f'{elapsed:.1f} s elapsed, about {left:.1f} s left',
                  logger='current')


class SlideProgressMixin:
    """Mixin for ``EncoderDecoder`` subclasses (put it before them in the
    bases): log progress of ``slide_inference`` on rank 0 when it runs more
    than ``test_cfg.progress_min_crops`` crops (default 16; ``None``
    silences it).

    Cost: one attribute check per ``encode_decode`` call.
    """

    def slide_inference(self, inputs, batch_img_metas):
        """``EncoderDecoder.slide_inference``, with progress lines.

        Args:
            inputs (Tensor): ``(N, C, H, W)``.
            batch_img_metas (list[dict]): per-image meta.
        Returns:
            Tensor: ``(N, num_classes, H, W)`` logits, as mmseg's.
        """
        min_crops = self.test_cfg.get('progress_min_crops', PROGRESS_MIN_CROPS)
        crop, stride = self.test_cfg.crop_size, self.test_cfg.stride
        total = num_slide_crops(inputs.shape[-2:], crop, stride)
        if min_crops is None or total <= min_crops or get_rank() != 0:
            return super().slide_inference(inputs, batch_img_metas)
        h, w = inputs.shape[-2:]
        self._slide_progress = _CropProgress(
            total, f'of {crop[0]}x{crop[1]} (stride {stride[0]}x{stride[1]}) '
            f'over a {h}x{w} input')
        try:
            return super().slide_inference(inputs, batch_img_metas)
        finally:
            self._slide_progress = None

    def encode_decode(self, inputs, batch_img_metas):
        logits = super().encode_decode(inputs, batch_img_metas)
        progress = getattr(self, '_slide_progress', None)
        if progress is not None:
            progress.step()
        return logits
