"""CheckSegAnnotation in the shipped pipelines: bad label maps (ids out of
range, wrong size, RGB colour maps) stop at load time with the file named,
through the real dataset and the demo config's train / test / TTA
pipelines, on generated PNGs in MMSegmentation's folder layout."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_davpt  # noqa: F401  (registers)
from tests._helpers import VPT

SIZE = 16


def write_pair(root, split, name, label, img_size=(SIZE, SIZE)):
    """An RGB image and its label map under ``img_dir`` / ``ann_dir``."""
    for sub in ('img_dir', 'ann_dir'):
        os.makedirs(osp.join(root, sub, split), exist_ok=True)
    img = np.random.RandomState(0).randint(0, 255, (*img_size, 3), np.uint8)
    Image.fromarray(img).save(osp.join(root, 'img_dir', split, name + '.png'))
    path = osp.join(root, 'ann_dir', split, name + '.png')
    Image.fromarray(label).save(path)
    return path


def good_label(value_range=5):
    return (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % value_range).astype(
        np.uint8)


def build(root, split='train', which='train_pipeline', **dataset):
    """The demo config's dataset on ``root`` with one of its pipelines."""
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(VPT)
    init_default_scope('mmseg')
    ds = cfg.train_dataloader.dataset
    ds.update(data_root=str(root), pipeline=cfg[which],
              data_prefix=dict(img_path=f'img_dir/{split}',
                               seg_map_path=f'ann_dir/{split}'), **dataset)
    return DATASETS.build(ds)


@pytest.mark.parametrize('which', ['train_pipeline', 'test_pipeline',
                                   'tta_pipeline'])
def test_ids_outside_num_classes_are_an_error_naming_the_file(tmp_path,
                                                              which):
    label = good_label()
    label[0, :3] = 7  # the demo has 5 classes
    label[1, 0] = 255  # ignore index: allowed
    path = write_pair(tmp_path, 'train', 'a', label)
    dataset = build(tmp_path, which=which)
    with pytest.raises(ValueError) as err:
        dataset[0]
    msg = str(err.value)
    assert path in msg and osp.join('img_dir', 'train', 'a.png') in msg
    assert 'outside [0, 5)' in msg and '7 (3 px)' in msg
    assert '255' in msg and 'reduce_zero_label' in msg


def test_labels_one_to_num_classes_hint_reduce_zero_label(tmp_path):
    write_pair(tmp_path, 'train', 'a', good_label(6))  # ids 0..5
    with pytest.raises(ValueError, match='need reduce_zero_label=True'):
        build(tmp_path)[0]


def test_check_runs_after_reduce_zero_label(tmp_path):
    # ids 0..5: 0 -> 255 (ignored) and 1..5 -> 0..4 by LoadAnnotations, so
    # every id is valid for 5 classes once reduced
    write_pair(tmp_path, 'train', 'a', good_label(6))
    dataset = build(tmp_path, reduce_zero_label=True)
    assert 'CheckSegAnnotation(num_classes=5' in repr(dataset.pipeline)
    sample = dataset[0]
    seg = sample['data_samples'].gt_sem_seg.data.numpy()
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 3, 4, 255}


@pytest.mark.parametrize('which', ['train_pipeline', 'test_pipeline'])
def test_label_map_of_another_size_is_an_error(tmp_path, which):
    path = write_pair(tmp_path, 'val', 'a', good_label()[:, :SIZE // 2],
                      img_size=(SIZE, SIZE))
    with pytest.raises(ValueError) as err:
        build(tmp_path, split='val', which=which)[0]
    msg = str(err.value)
    assert path in msg
    assert f'label map is {SIZE}x{SIZE // 2}' in msg
    assert f'image is {SIZE}x{SIZE}' in msg


@pytest.mark.parametrize('which', ['train_pipeline', 'test_pipeline'])
def test_rgb_colour_label_map_is_an_error(tmp_path, which):
    palette = np.array([[0, 0, 0], [220, 20, 60], [0, 128, 255],
                        [255, 200, 0], [60, 180, 75]], np.uint8)
    path = write_pair(tmp_path, 'train', 'a', palette[good_label()])
    with pytest.raises(ValueError) as err:
        build(tmp_path, which=which)[0]
    msg = str(err.value)
    assert path in msg
    assert ('looks like an RGB colour-coded label map: convert to '
            'class-index PNG') in msg


def test_valid_maps_pass_unchanged(tmp_path):
    label = good_label()
    label[2:4, 2:4] = 255
    write_pair(tmp_path, 'train', 'a', label)
    dataset = build(tmp_path, which='test_pipeline')
    assert 'CheckSegAnnotation(num_classes=5' in repr(dataset.pipeline)
    sample = dataset[0]
    assert np.array_equal(sample['data_samples'].gt_sem_seg.data[0].numpy(),
                          label)
