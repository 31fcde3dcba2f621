"""Linear probe of a digits ViT on the unseen digits 5-9: is the upstream
model really pretrained? Its final [CLS] features must separate the new
classes much better than those of a random ViT of the same shape."""
import os.path as osp
import tempfile
from typing import Dict, Optional

import numpy as np
import torch

from . import DIGITS_IMG_SIZE, DOWNSTREAM_CLASSES
from .images import digit_images
from .pretrain import build_digits_vit, normalise, random_digits_vit_state


@torch.no_grad()
def vit_features(checkpoint: str, images: np.ndarray,
                 batch_size: int = 256,
                 arch: Optional[dict] = None) -> np.ndarray:
    """Final [CLS] features (after the last LayerNorm) ``(N, 64)`` of uint8
    images ``(N, 32, 32)`` from a digits ViT file (timm or MMSegmentation
    layout), loaded into the project's backbone the way a config's
    ``init_cfg=dict(type='Pretrained', ...)`` loads it (``arch``: as for
    ``pretrain_digits_vit``)."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'no such ViT checkpoint: {checkpoint}')
    backbone = build_digits_vit(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        **(arch or {}))
    backbone.init_weights()
    backbone.eval()
    x = normalise(images)
    return torch.cat([backbone(x[i:i + batch_size])[0]
                      for i in range(0, len(x), batch_size)]).numpy()


def probe_accuracy(features: np.ndarray, labels: np.ndarray, shots: int,
                   draws: int = 5, seed: int = 0) -> float:
    """Mean test accuracy over ``draws`` of a logistic regression (on
    standardised features) trained on ``shots`` random images per class
    and tested on all the others; draw ``d`` uses ``seed + d``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    classes, counts = np.unique(labels, return_counts=True)
    if shots < 1 or counts.min() <= shots:
        raise ValueError(f'shots must be in [1, {counts.min() - 1}] (the '
                         f'smallest class has {counts.min()} images), got '
                         f'{shots}')
    accs = []
    for d in range(draws):
        rng = np.random.default_rng(seed + d)
        train = np.zeros(len(labels), dtype=bool)
        for c in classes:
            train[rng.choice(np.flatnonzero(labels == c), shots,
                             replace=False)] = True
        clf = make_pipeline(StandardScaler(),
                            LogisticRegression(max_iter=2000))
        clf.fit(features[train], labels[train])
        accs.append(clf.score(features[~train], labels[~train]))
    return float(np.mean(accs))


def probe_gap(checkpoint: str, shots: int = 10, draws: int = 5,
              seed: int = 0, random_seed: int = 0,
              arch: Optional[dict] = None) -> Dict[str, float]:
    """Linear-probe accuracy on digits 5-9 of ``checkpoint`` and of a random
    digits ViT (``random_digits_vit_state(random_seed)``, loaded through the
    same path), on the same draws. ``arch``: as for ``pretrain_digits_vit``.

    Returns:
        ``dict(pretrained=acc, random=acc, shots=shots, draws=draws)``,
        accuracies in [0, 1].
    """
    images, digits, _ = digit_images(DOWNSTREAM_CLASSES, DIGITS_IMG_SIZE)
    result = dict(shots=shots, draws=draws)
    result['pretrained'] = probe_accuracy(
        vit_features(checkpoint, images, arch=arch), digits, shots, draws,
        seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'random_vit_timm.pth')
        torch.save(random_digits_vit_state(random_seed, arch), path)
        result['random'] = probe_accuracy(
            vit_features(path, images, arch=arch), digits, shots, draws,
            seed)
    return result


def format_probe(result: Dict[str, float], label: Optional[str] = None
                 ) -> str:
    """One line: both accuracies and the gap, in points."""
    head = f'{label}: ' if label else ''
    return (f'{head}linear probe on digits 5-9, {result["shots"]} shots per '
            f'class, mean of {result["draws"]} draws: pretrained '
            f'{100 * result["pretrained"]:.1f}%, random ViT '
            f'{100 * result["random"]:.1f}% (gap '
            f'{100 * (result["pretrained"] - result["random"]):+.1f} points)')
