"""ClassBalancedSampler: every block of ``batch_size`` indices is exactly
``batch_size / samples_per_class`` distinct classes x ``samples_per_class``
images, across epochs, on simulated ranks and through a Runner-built
dataloader on the generated classification demo data."""
import math
from collections import Counter

import mmengine.dist
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmseg_davpt.datasets import (ClassBalancedSampler, check_balanced_loader,
                                  generate_cls_folders)

# 20 images, 5 classes; class 2 has a single image, class 1 three
LABELS = [0] * 7 + [1] * 3 + [2] * 1 + [3] * 5 + [4] * 4


class GtLabels:
    """Minimal mmpretrain-like dataset: ``get_gt_labels()``."""

    def __init__(self, labels):
        self.labels = list(labels)

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return np.array(self.labels)


class CatIds:
    """Dataset exposing only ``get_cat_ids(i)`` (mmengine style)."""

    def __init__(self, labels):
        self.labels = list(labels)

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, i):
        return [self.labels[i]]


def blocks_of(indices, batch_size):
    assert len(indices) % batch_size == 0
    return [indices[i:i + batch_size]
            for i in range(0, len(indices), batch_size)]


def assert_balanced(indices, labels, batch_size, k):
    """Every block: batch_size / k distinct classes, k images each; no
    image twice within a class unless the class has fewer than k."""
    size = Counter(labels)
    for block in blocks_of(indices, batch_size):
        by_class = {}
        for i in block:
            by_class.setdefault(labels[i], []).append(i)
        assert len(by_class) == batch_size // k, block
        for c, idx in by_class.items():
            assert len(idx) == k, block
            if size[c] >= k:
                assert len(set(idx)) == k, block
    return blocks_of(indices, batch_size)


@pytest.mark.parametrize('batch_size,k', [(6, 2), (8, 4), (5, 1), (4, 2)])
def test_every_block_is_balanced_across_epochs(batch_size, k):
    sampler = ClassBalancedSampler(GtLabels(LABELS), batch_size, k, seed=3)
    epochs = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        # ceil(20 / batch_size) whole blocks
        assert len(indices) == len(sampler) == \
            math.ceil(20 / batch_size) * batch_size
        assert_balanced(indices, LABELS, batch_size, k)
        epochs.append(indices)
    assert len({tuple(e) for e in epochs}) == 4  # a new draw per epoch
    # the same seed and epoch give the same indices
    again = ClassBalancedSampler(GtLabels(LABELS), batch_size, k, seed=3)
    again.set_epoch(2)
    assert list(again) == epochs[2]


def test_classes_are_drawn_uniformly_whatever_their_size():
    """Over many blocks a 50-image class appears as often as a 350-image
    one (within 20%, fixed seed); within a class, images come round before
    any repeats."""
    sampler = ClassBalancedSampler(GtLabels(LABELS * 50), 6, 2, seed=0)
    labels = LABELS * 50
    indices = list(sampler)  # 167 blocks, 501 class slots
    counts = Counter(labels[i] for i in indices[::2])
    expected = len(indices) / 2 / 5
    assert all(abs(n - expected) <= 0.2 * expected for n in counts.values())
    # class 0 has 350 images here: the first 175 chunks of it (well within
    # one round) never repeat an image
    class0 = [i for i in indices if labels[i] == 0]
    assert len(set(class0)) == len(class0)


def test_fewer_images_than_samples_per_class_uses_replacement():
    sampler = ClassBalancedSampler(GtLabels([0, 1, 1, 1, 2, 2, 2]), 6, 3,
                                   seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for block in assert_balanced(list(sampler), [0, 1, 1, 1, 2, 2, 2],
                                     6, 3):
            if 0 in block:
                assert block.count(0) == 3  # the only image, repeated


def test_no_shuffle_is_fixed_round_robin():
    # class 0: images 0, 2, 5; class 1: 1, 3; class 2: 4
    labels = [0, 1, 0, 1, 2, 0]
    sampler = ClassBalancedSampler(GtLabels(labels), 4, 2, shuffle=False)
    # block 0: classes 0, 1; block 1: classes 2, 0 (round robin), each
    # class's images in dataset order, cyclically
    expected = [0, 2, 1, 3, 4, 4, 5, 0]
    assert list(sampler) == expected
    sampler.set_epoch(5)
    assert list(sampler) == expected


def test_get_cat_ids_datasets_work_too():
    a = ClassBalancedSampler(CatIds(LABELS), 6, 2, seed=0)
    b = ClassBalancedSampler(GtLabels(LABELS), 6, 2, seed=0)
    assert list(a) == list(b)


@pytest.mark.parametrize('epoch', [0, 1])
def test_two_ranks_get_whole_balanced_blocks_of_equal_length(
        monkeypatch, epoch):
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(mmengine.dist, 'get_dist_info',
                            lambda rank=rank: (rank, 2))
        sampler = ClassBalancedSampler(GtLabels(LABELS), 6, 2, seed=7)
        sampler.set_epoch(epoch)
        per_rank.append(list(sampler))
        # ceil(20 / (6 * 2)) = 2 blocks per rank
        assert len(sampler) == len(per_rank[-1]) == 12
        assert_balanced(per_rank[-1], LABELS, 6, 2)
    assert per_rank[0] != per_rank[1]  # the ranks take different blocks
    # together the ranks cover at least the dataset's size
    assert len(per_rank[0]) + len(per_rank[1]) >= len(LABELS)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match='not a multiple of'):
        ClassBalancedSampler(GtLabels(LABELS), 6, 4)
    with pytest.raises(ValueError, match='6 classes per batch, but .* only 5'):
        ClassBalancedSampler(GtLabels(LABELS), 12, 2)
    with pytest.raises(TypeError, match='neither get_gt_labels'):
        ClassBalancedSampler(list(range(10)), 4, 2)
    with pytest.raises(ValueError, match='one integer class per sample'):
        ClassBalancedSampler(CatIds([[0, 1], [1, 2]]), 2, 1)
    with pytest.raises(ValueError, match='is empty'):
        ClassBalancedSampler(GtLabels([]), 2, 1)
    with pytest.raises(ValueError, match='positive int'):
        ClassBalancedSampler(GtLabels(LABELS), 4, 0)


def test_runner_built_dataloader_yields_balanced_batches(tmp_path):
    """From a config dict, as a config's train_dataloader, on the generated
    classification demo data (6 classes)."""
    root = generate_cls_folders(str(tmp_path / 'demo'), 'vtab',
                                num_classes=6,
                                per_split=dict(train800=30, val200=6,
                                               test=6), img_size=8)
    init_default_scope('mmpretrain')
    cfg = dict(
        batch_size=6, num_workers=0,
        sampler=dict(type='ClassBalancedSampler', batch_size=6,
                     samples_per_class=2),
        dataset=dict(type='VTAB1k', data_root=root, split='train800',
                     num_classes=6,
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='PackInputs')]))
    loader = Runner.build_dataloader(cfg, seed=0)
    assert isinstance(loader.sampler, ClassBalancedSampler)
    check_balanced_loader(loader)
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 5  # ceil(30 / 6)
        for batch in batches:
            labels = [int(s.gt_label) for s in batch['data_samples']]
            counts = Counter(labels)
            assert len(counts) == 3 and set(counts.values()) == {2}
            # the labels the sampler saw are the images' labels
            assert labels == [loader.dataset.get_cat_ids(i)[0] for i in
                              _paths_to_indices(loader.dataset, batch)]
    # a loader batch size other than the sampler's is caught
    bad = Runner.build_dataloader(dict(cfg, batch_size=4), seed=0)
    with pytest.raises(ValueError, match='batch_size 4 differs'):
        check_balanced_loader(bad)
    # ... and tools/train.py runs that check before training
    from types import SimpleNamespace

    from tools.train import check_train_split
    with pytest.raises(ValueError, match='batch_size 4 differs'):
        check_train_split(SimpleNamespace(train_dataloader=bad, cfg=None))


def _paths_to_indices(dataset, batch):
    index = {dataset.get_data_info(i)['img_path']: i
             for i in range(len(dataset))}
    return [index[s.img_path] for s in batch['data_samples']]
