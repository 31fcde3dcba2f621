"""Digit scenes: labels follow the ink, splits use disjoint scans, the same
seed gives the same bytes, the counts and the trainval folder are right,
and the dataset loads through MMSegmentation's registry."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
from PIL import Image

from mmseg_davpt.digits.scenes import (SCENE_CLASSES, make_digit_scenes,
                                       render_scene, split_scans)
from tools.make_digit_scenes import main as make_digit_scenes_cli

SMALL = (6, 3, 4)


def read(root, kind, split, name):
    return np.array(Image.open(osp.join(root, kind, split, name)))


def digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    return make_digit_scenes(str(tmp_path_factory.mktemp('scenes')), seed=3,
                             num_scenes=(40, 8, 8))


def test_label_is_the_class_where_the_ink_is():
    """A fully inked scan labels its whole square, an empty scan nothing;
    everything else stays background."""
    full = np.full((1, 8, 8), 16.)
    blank = np.zeros((1, 8, 8))
    img, label = render_scene(full, np.array([4]), np.random.default_rng(0),
                              size=64, scale=(20, 20))
    assert label.dtype == np.uint8 and label.shape == (64, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    ys, xs = np.nonzero(label)
    assert set(np.unique(label)) == {0, 4}
    # one 20x20 square, nothing outside it
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (20, 20)
    assert len(ys) == 400
    # fully inked pixels are brighter than every background pixel's mean
    assert img[label == 4].mean() > img[label == 0].mean() + 80
    _, label = render_scene(blank, np.array([2]), np.random.default_rng(0))
    assert not label.any()


def test_labelled_pixels_are_bright_ink_of_the_scene(scenes):
    """On real scans: labelled pixels are much brighter than the background
    and only digit classes 1-5 appear (with background 0)."""
    seen = set()
    for name in sorted(os.listdir(osp.join(scenes, 'ann_dir', 'train'))):
        label = read(scenes, 'ann_dir', 'train', name)
        img = read(scenes, 'img_dir', 'train', name)
        assert (img[..., 0] == img[..., 1]).all()  # grey, like pretraining
        ink = label > 0
        assert ink.any() and (~ink).any()
        assert img[ink, 0].mean() > img[~ink, 0].mean() + 50
        seen |= set(np.unique(label).tolist())
    assert seen == set(range(len(SCENE_CLASSES)))


def test_splits_use_disjoint_scans_of_digits_5_to_9(scenes):
    from sklearn.datasets import load_digits
    targets = load_digits().target
    with open(osp.join(scenes, 'meta.json')) as f:
        ids = {k: set(v) for k, v in json.load(f)['scan_ids'].items()}
    assert set(ids) == {'train', 'val', 'test'}
    assert not ids['train'] & ids['val']
    assert not ids['train'] & ids['test']
    assert not ids['val'] & ids['test']
    for split, chosen in ids.items():
        # every split has every downstream digit and no upstream one
        assert set(targets[sorted(chosen)]) == {5, 6, 7, 8, 9}, split
    # all scans of 5-9 are shared out (fractions 0.5 / 0.2 / 0.3)
    all_ids = ids['train'] | ids['val'] | ids['test']
    assert all_ids == set(np.flatnonzero(targets >= 5).tolist())
    assert abs(len(ids['train']) / len(all_ids) - 0.5) < 0.01


def test_split_of_scans_follows_the_seed():
    targets = np.repeat(np.arange(10), 20)
    a, b, c = (split_scans(targets, s) for s in (0, 0, 1))
    assert all((a[k] == b[k]).all() for k in a)
    assert any(set(a[k]) != set(c[k]) for k in a)
    assert [len(a[k]) for k in ('train', 'val', 'test')] == [50, 20, 30]
    with pytest.raises(ValueError, match='fractions'):
        split_scans(targets, 0, fractions=(0.8, 0.3, 0.1))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_digit_scenes(str(tmp_path / 'a'), seed=1, num_scenes=SMALL)
    b = make_digit_scenes(str(tmp_path / 'b'), seed=1, num_scenes=SMALL)
    c = make_digit_scenes(str(tmp_path / 'c'), seed=2, num_scenes=SMALL)
    assert digest(a) == digest(b) != digest(c)


def test_counts_and_trainval_copies(tmp_path):
    root = make_digit_scenes(str(tmp_path), seed=0, num_scenes=SMALL)
    for kind in ('img_dir', 'ann_dir'):
        files = {s: sorted(os.listdir(osp.join(root, kind, s)))
                 for s in ('train', 'val', 'test', 'trainval')}
        assert [len(files[s]) for s in ('train', 'val', 'test')] == \
            list(SMALL)
        assert files['trainval'] == sorted(
            [f'train_{n}' for n in files['train']] +
            [f'val_{n}' for n in files['val']])
        for split in ('train', 'val'):
            for name in files[split]:
                assert (read(root, kind, split, name) == read(
                    root, kind, 'trainval', f'{split}_{name}')).all()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='num_scenes'):
        make_digit_scenes(str(tmp_path), num_scenes=(4, 0, 2))
    with pytest.raises(ValueError, match='scale'):
        make_digit_scenes(str(tmp_path), scale=(40, 80))
    with pytest.raises(ValueError, match='ink_threshold'):
        make_digit_scenes(str(tmp_path), ink_threshold=1.5)


def test_cli_writes_once_and_keeps_existing(tmp_path, capsys):
    root = str(tmp_path / 'seg')
    argv = ['--root', root, '--seed', '2', '--num-scenes', '3', '2', '2']
    make_digit_scenes_cli(argv)
    assert len(os.listdir(osp.join(root, 'img_dir', 'trainval'))) == 5
    before = digest(root)
    make_digit_scenes_cli(['--root', root, '--seed', '5'])
    assert 'exists' in capsys.readouterr().out
    assert digest(root) == before


def test_dataset_loads_through_registry(scenes):
    register_all_modules()
    ds = DATASETS.build(dict(
        type='DigitScenesDataset', data_root=scenes,
        data_prefix=dict(img_path='img_dir/trainval',
                         seg_map_path='ann_dir/trainval'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))
    assert len(ds) == 48
    assert ds.metainfo['classes'] == SCENE_CLASSES
    item = ds[0]
    assert item['inputs'].shape == (3, 64, 64)
    assert item['data_samples'].gt_sem_seg.data.max() <= 5
