"""Class-balanced sampling for classification: every batch holds
``batch_size / samples_per_class`` classes with ``samples_per_class``
images each (the batch layout of the DA-VPT authors' classification code,
an option of their FGVC / VTAB recipes)."""
import math
from typing import Iterator, List, Optional

import numpy as np
from mmengine import dist
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from ...utils.registry import also_in_mmpretrain


def read_labels(dataset) -> np.ndarray:
    """One integer class label per sample, ``(N,)``, from mmpretrain's
    ``get_gt_labels()`` or, failing that, ``get_cat_ids(i)``."""
    name = type(dataset).__name__
    if hasattr(dataset, 'get_gt_labels'):
        raw = list(dataset.get_gt_labels())
    elif hasattr(dataset, 'get_cat_ids'):
        raw = [dataset.get_cat_ids(i) for i in range(len(dataset))]
    else:
        raise TypeError(
            f'ClassBalancedSampler needs per-sample class labels, but '
            f'{name} has neither get_gt_labels() nor get_cat_ids(i) '
            f'(mmpretrain datasets have both)')
    labels = []
    for i, label in enumerate(raw):
        flat = np.asarray(label).reshape(-1)
        if flat.size != 1 or not np.issubdtype(flat.dtype, np.integer):
            raise ValueError(
                f'ClassBalancedSampler needs one integer class per sample; '
                f'sample {i} of {name} has label {label!r}')
        labels.append(int(flat[0]))
    if not labels:
        raise ValueError(f'ClassBalancedSampler: {name} is empty')
    return np.asarray(labels, dtype=np.int64)


@also_in_mmpretrain('DATA_SAMPLERS')
@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(Sampler):
    """Yield indices in blocks of ``batch_size``: each block is
    ``batch_size // samples_per_class`` distinct classes x
    ``samples_per_class`` images of each, class by class.

    **The dataloader's ``batch_size`` must equal this ``batch_size``** (and
    every rank's length is a whole number of blocks, so no batch straddles
    two blocks). The sampler cannot see the loader it is given to; call
    :func:`check_balanced_loader` on a built loader to verify it::

        train_dataloader = dict(
            batch_size=32,
            sampler=dict(type='ClassBalancedSampler', batch_size=32,
                         samples_per_class=2),
            ...)

    Each epoch has ``ceil(N / (batch_size * world_size))`` blocks per rank
    (at least ``N`` indices in all, as ``DefaultSampler`` with
    ``round_up=True``). With ``shuffle=True`` every block draws its classes
    uniformly without replacement (so each class is equally frequent,
    whatever its size), and each class hands out its images in a fresh
    random order, ``samples_per_class`` at a time, before repeating any
    (a remainder smaller than ``samples_per_class`` waits for the next
    round). A class with fewer images than ``samples_per_class`` gives all
    of them plus repeats drawn with replacement. The draw depends only on
    ``seed`` and the epoch (``set_epoch``). With ``shuffle=False`` the
    classes are taken in sorted order, round robin, and each class's
    images in dataset order, cyclically: the same blocks every epoch.

    Distributed: every rank builds the same global sequence of
    ``blocks_per_rank * world_size`` blocks and takes every
    ``world_size``-th block starting at its rank, so each rank gets whole
    balanced blocks and all ranks have the same length.

    Args:
        dataset: The dataset; labels are read with ``get_gt_labels()`` or
            ``get_cat_ids(i)`` (mmpretrain ``BaseDataset``), one integer
            class per sample.
        batch_size (int): Images per block; equal to the loader's.
        samples_per_class (int): Images of each class per block; must
            divide ``batch_size``.
        shuffle (bool): Random classes and images per epoch (see above).
        seed (int, optional): Base seed, the same on every rank; ``None``
            draws one and synchronises it across ranks (as mmengine's
            samplers; the runner passes its ``randomness.seed``).
    """

    def __init__(self,
                 dataset,
                 batch_size: int,
                 samples_per_class: int,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        for name, value in (('batch_size', batch_size),
                            ('samples_per_class', samples_per_class)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, '
                                 f'got {value!r}')
        if batch_size % samples_per_class:
            raise ValueError(
                f'batch_size {batch_size} is not a multiple of '
                f'samples_per_class {samples_per_class}: a batch must be '
                f'whole groups of samples_per_class images per class')
        labels = read_labels(dataset)
        self.classes = np.unique(labels)
        self.classes_per_batch = batch_size // samples_per_class
        if self.classes_per_batch > len(self.classes):
            raise ValueError(
                f'batch_size {batch_size} / samples_per_class '
                f'{samples_per_class} = {self.classes_per_batch} classes per '
                f'batch, but {type(dataset).__name__} has only '
                f'{len(self.classes)} classes')
        # index lists per class, in dataset order
        self.class_indices: List[np.ndarray] = [
            np.flatnonzero(labels == c) for c in self.classes]
        self.rank, self.world_size = dist.get_dist_info()
        self.dataset = dataset
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.shuffle = shuffle
        self.seed = dist.sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.blocks_per_rank = math.ceil(
            len(labels) / (batch_size * self.world_size))

    # ----------------------------------------------------------- drawing
    def _chunks_random(self, indices: np.ndarray, rng: np.random.Generator):
        """Endless ``(k,)`` chunks of one class: a new permutation each
        round, cut into whole chunks (no image twice in a chunk)."""
        k = self.samples_per_class
        while True:
            if len(indices) < k:  # too few images: pad with repeats
                pad = rng.choice(indices, k - len(indices), replace=True)
                yield rng.permutation(np.concatenate([indices, pad]))
                continue
            order = rng.permutation(indices)
            for start in range(0, len(order) - k + 1, k):
                yield order[start:start + k]

    def _chunks_in_order(self, indices: np.ndarray):
        """Endless ``(k,)`` chunks of one class in dataset order, cyclic
        (k consecutive entries of a cycle of n >= k are distinct)."""
        k, n, start = self.samples_per_class, len(indices), 0
        while True:
            yield indices[(start + np.arange(k)) % n]
            start = (start + k) % n

    def _blocks(self) -> List[np.ndarray]:
        """All ranks' blocks of this epoch, ``blocks_per_rank *
        world_size`` arrays of shape ``(batch_size,)``."""
        num_blocks = self.blocks_per_rank * self.world_size
        m, num_classes = self.classes_per_batch, len(self.classes)
        if self.shuffle:
            # (seed, epoch) as entropy: distinct streams, identical on ranks
            rng = np.random.default_rng([self.seed % 2**32, self.epoch])
            streams = [self._chunks_random(idx, rng)
                       for idx in self.class_indices]
            picks = [rng.choice(num_classes, m, replace=False)
                     for _ in range(num_blocks)]
        else:
            streams = [self._chunks_in_order(idx)
                       for idx in self.class_indices]
            picks = [(b * m + np.arange(m)) % num_classes
                     for b in range(num_blocks)]
        return [np.concatenate([next(streams[c]) for c in pick])
                for pick in picks]

    def __iter__(self) -> Iterator[int]:
        blocks = self._blocks()[self.rank::self.world_size]
        return iter(np.concatenate(blocks).tolist())

    def __len__(self) -> int:
        """Indices on this rank: whole blocks."""
        return self.blocks_per_rank * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's blocks (with ``shuffle=True``)."""
        self.epoch = epoch


def check_balanced_loader(dataloader) -> None:
    """Raise ``ValueError`` when a loader with a
    :class:`ClassBalancedSampler` would cut its blocks: its ``batch_size``
    must equal the sampler's (mmengine builds the sampler before the loader,
    so the sampler itself cannot check this)."""
    sampler = getattr(dataloader, 'sampler', None)
    if not isinstance(sampler, ClassBalancedSampler):
        return
    if dataloader.batch_size != sampler.batch_size:
        raise ValueError(
            f'the dataloader batch_size {dataloader.batch_size} differs from '
            f'ClassBalancedSampler batch_size {sampler.batch_size}: batches '
            f'would not be whole class-balanced blocks; set both to the '
            f'same value')
