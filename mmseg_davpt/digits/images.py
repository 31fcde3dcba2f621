"""scikit-learn's handwritten digits as 32x32 8-bit images: the one place the
upstream pretraining and the downstream data read the scans, so both see
exactly the same pixels."""
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# load_digits() scans have 17 grey levels, 0 (paper) to 16 (ink).
SCAN_MAX = 16.


def digit_images(classes: Sequence[int], size: int = 32
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scans of ``classes`` upsampled bilinearly to ``size`` px.

    Returns:
        ``(images, digits, scan_ids)``: ``(N, size, size)`` uint8 grey
        images (ink bright, 0-255), ``(N,)`` the digit of each, ``(N,)`` its
        row in ``sklearn.datasets.load_digits()`` (a stable image id), in
        scan order.
    """
    from sklearn.datasets import load_digits
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c <= 9]
    if bad or not classes:
        raise ValueError(f'digit classes must be a non-empty subset of 0-9, '
                         f'got {list(classes)}')
    if size < 8:
        raise ValueError(f'size must be >= 8 (the scans are 8x8), got {size}')
    data = load_digits()
    scan_ids = np.flatnonzero(np.isin(data.target, classes))
    scans = torch.from_numpy(data.images[scan_ids]).float()[:, None]
    up = F.interpolate(scans * (255. / SCAN_MAX), size=(size, size),
                       mode='bilinear', align_corners=False)
    images = up[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return images, data.target[scan_ids].astype(np.int64), scan_ids
