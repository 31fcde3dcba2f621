"""``tools/dataset_prep/make_fgvc_splits.py`` on the MATLAB split files of
Stanford Dogs, Stanford Cars and Oxford Flowers, written here with
``scipy.io.savemat`` in the official structures (cell arrays, struct
arrays, 1-based labels and image ids), and on its 90/10 split."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

scipy_io = pytest.importorskip('scipy.io')
pytest.importorskip('mmpretrain')

from mmseg_davpt.datasets import FGVC, FGVC_TASKS  # noqa: E402
from tools.dataset_prep import make_fgvc_splits  # noqa: E402
from tools.dataset_prep.make_fgvc_splits import split_train_val  # noqa: E402


def cell(strings):
    """A MATLAB (N, 1) cell array of char arrays, as in the official
    files."""
    out = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        out[i, 0] = np.array([s])
    return out


def touch_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (4, 4)).save(path)


def read_splits(folder):
    return [json.load(open(folder / f'{s}.json'))
            for s in ('train', 'val', 'test')]


def check_images_resolve(root, task, *splits):
    """Every key is a file under the FGVC class's image root of ``task``,
    and the folder loads as that task's ``FGVC`` dataset."""
    prefix = FGVC_TASKS[task]['image_prefix']
    for split in splits:
        for rel in split:
            assert osp.isfile(osp.join(root, prefix, rel)), rel
    with pytest.warns(UserWarning, match='classes occur'):  # tiny fakes
        ds = FGVC(str(root), 'test', task=task)
    assert len(ds) == len(splits[-1])


# ---------------------------------------------------------- Stanford Dogs
BREEDS = ('n02085620-Chihuahua', 'n02085782-Japanese_spaniel',
          'n02085936-Maltese_dog')


def fake_dogs(root, train_per_class=10, test_files=None, lists_dir='lists'):
    """``train_list.mat`` / ``test_list.mat`` like ``lists.tar``: cells
    ``file_list`` / ``annotation_list``, ``labels`` (N, 1) doubles 1..3."""
    train = [(f'{b}/{b[:9]}_{k}.jpg', i + 1) for i, b in enumerate(BREEDS)
             for k in range(train_per_class)]
    test = test_files or [(f'{b}/{b[:9]}_t.jpg', i + 1)
                          for i, b in enumerate(BREEDS)]
    (root / lists_dir).mkdir(parents=True, exist_ok=True)
    for name, rows in (('train_list.mat', train), ('test_list.mat', test)):
        files = [f for f, _ in rows]
        scipy_io.savemat(str(root / lists_dir / name), dict(
            file_list=cell(files),
            annotation_list=cell([f[:-4] for f in files]),
            labels=np.array([[c] for _, c in rows], dtype=np.float64)))
        for f in files:
            touch_image(root / 'Images' / f)
    return dict(train), dict(test)


def test_stanford_dogs_splits(tmp_path):
    root = tmp_path / 'stanford_dogs'
    official_train, official_test = fake_dogs(root)
    assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root)]) == 0
    train, val, test = read_splits(root)
    # 30 official training images: ceil(10%) = 3 val, one per class here
    # (each class has 10, so each gives exactly one)
    assert (len(train), len(val)) == (27, 3)
    assert sorted(val.values()) == [0, 1, 2]
    assert not set(train) & set(val)
    # 1-based breed ids become 0-based, paths stay relative to Images/
    assert {**train, **val} == {f: c - 1 for f, c in official_train.items()}
    assert test == {
        'n02085620-Chihuahua/n02085620_t.jpg': 0,
        'n02085782-Japanese_spaniel/n02085782_t.jpg': 1,
        'n02085936-Maltese_dog/n02085936_t.jpg': 2}
    check_images_resolve(root, 'stanford_dogs', train, val, test)
    # the same seed gives the same split, another seed another one
    for seed, same in (('0', True), ('3', False)):
        out = tmp_path / f'seed{seed}'
        assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root),
                                      '--out', str(out), '--seed', seed]) == 0
        assert (read_splits(out)[1] == val) == same


def test_stanford_dogs_single_entry_list_and_lists_in_root(tmp_path):
    """A one-image list (squeezed to a 0-d array by loadmat) still reads;
    the .mat files may sit in the root instead of lists/."""
    root = tmp_path / 'dogs'
    fake_dogs(root, test_files=[('n02085936-Maltese_dog/x.jpg', 3)],
              lists_dir='')
    assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root)]) == 0
    assert read_splits(root)[2] == {'n02085936-Maltese_dog/x.jpg': 2}


def test_stanford_dogs_errors(tmp_path, capsys):
    root = tmp_path / 'dogs'
    assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root)]) == 1
    assert 'train_list.mat not found' in capsys.readouterr().err
    fake_dogs(root)
    scipy_io.savemat(str(root / 'lists' / 'test_list.mat'),
                     dict(file_list=cell(['a/b.jpg']),
                          labels=np.array([[0.]])))
    assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root)]) == 1
    assert 'label 0 is not a positive (1-based)' in capsys.readouterr().err
    scipy_io.savemat(str(root / 'lists' / 'test_list.mat'),
                     dict(files=cell(['a/b.jpg'])))
    assert make_fgvc_splits.main(['stanford_dogs', '--root', str(root)]) == 1
    assert "no variable 'file_list'" in capsys.readouterr().err


# ---------------------------------------------------------- Stanford Cars
def annotations(rows, with_class=True):
    """A (1, N) MATLAB struct array like ``cars_*_annos.mat``: uint8 /
    uint16 scalars as (1, 1) matrices, ``fname`` a char array."""
    names = ['bbox_x1', 'bbox_y1', 'bbox_x2', 'bbox_y2'] + \
        (['class'] if with_class else []) + ['fname']
    out = np.empty((1, len(rows)), dtype=[(n, object) for n in names])
    for i, (fname, cls) in enumerate(rows):
        values = [np.array([[v]], dtype=np.uint16) for v in (3, 4, 50, 60)]
        if with_class:
            values.append(np.array([[cls]], dtype=np.uint8))
        out[0, i] = tuple(values + [np.array([fname])])
    return out


def fake_cars(root, test_in='', test_with_class=True):
    """devkit/cars_{train_annos,meta}.mat + cars_test_annos_withlabels.mat
    with classes 1, 2 and 196 (the largest official id)."""
    train = [(f'{i:05d}.jpg', c) for i, c in
             enumerate([1, 2, 196] * 10, start=1)]
    test = [('00001.jpg', 196), ('00002.jpg', 1), ('00003.jpg', 2)]
    (root / 'devkit').mkdir(parents=True)
    scipy_io.savemat(str(root / 'devkit' / 'cars_train_annos.mat'),
                     dict(annotations=annotations(train)))
    (root / test_in).mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(
        str(root / test_in / 'cars_test_annos_withlabels.mat'),
        dict(annotations=annotations(test, test_with_class)))
    scipy_io.savemat(str(root / 'devkit' / 'cars_meta.mat'), dict(
        class_names=np.array([[f'Car {i}' for i in range(1, 197)]],
                             dtype=object)))
    for folder, rows in (('cars_train', train), ('cars_test', test)):
        for fname, _ in rows:
            touch_image(root / folder / fname)
    return train, test


def test_stanford_cars_splits(tmp_path):
    root = tmp_path / 'stanford_cars'
    official_train, _ = fake_cars(root)
    assert make_fgvc_splits.main(['stanford_cars', '--root', str(root)]) == 0
    train, val, test = read_splits(root)
    assert (len(train), len(val)) == (27, 3)
    assert not set(train) & set(val)
    # ids 1, 2, 196 -> 0, 1, 2 (contiguous); keys relative to the root
    index = {1: 0, 2: 1, 196: 2}
    assert {**train, **val} == {f'cars_train/{f}': index[c]
                                for f, c in official_train}
    assert test == {'cars_test/00001.jpg': 2, 'cars_test/00002.jpg': 0,
                    'cars_test/00003.jpg': 1}
    check_images_resolve(root, 'stanford_cars', train, val, test)


def test_stanford_cars_test_labels_in_devkit(tmp_path):
    root = tmp_path / 'cars'
    fake_cars(root, test_in='devkit')
    assert make_fgvc_splits.main(['stanford_cars', '--root', str(root)]) == 0
    assert len(read_splits(root)[2]) == 3


def test_stanford_cars_unlabelled_test_file_is_a_clear_error(tmp_path,
                                                             capsys):
    root = tmp_path / 'cars'
    fake_cars(root, test_with_class=False)
    assert make_fgvc_splits.main(['stanford_cars', '--root', str(root)]) == 1
    err = capsys.readouterr().err
    assert "no 'class' field" in err and 'withlabels' in err


def test_stanford_cars_ids_beyond_the_meta_file(tmp_path, capsys):
    root = tmp_path / 'cars'
    fake_cars(root)
    scipy_io.savemat(str(root / 'devkit' / 'cars_meta.mat'),
                     dict(class_names=np.array([['A', 'B']], dtype=object)))
    assert make_fgvc_splits.main(['stanford_cars', '--root', str(root)]) == 1
    assert 'class id 196' in capsys.readouterr().err


# --------------------------------------------------------- Oxford Flowers
FLOWER_LABELS = [2, 1, 3, 3, 1, 2, 2, 1]  # images 1..8


def fake_flowers(root, trnid, valid, tstid, labels):
    """``imagelabels.mat`` (labels, (1, N) doubles, 1-based) and
    ``setid.mat`` ((1, n) uint16 image ids, 1-based) as distributed."""
    root.mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(str(root / 'imagelabels.mat'),
                     dict(labels=np.array([labels], dtype=np.float64)))
    scipy_io.savemat(str(root / 'setid.mat'), {
        k: np.array([v], dtype=np.uint16)
        for k, v in (('trnid', trnid), ('valid', valid), ('tstid', tstid))})
    for i in range(1, len(labels) + 1):
        touch_image(root / 'jpg' / f'image_{i:05d}.jpg')


def test_oxford_flowers_keeps_the_official_val_split(tmp_path):
    root = tmp_path / 'oxford_flowers'
    # 8 images, classes 1..3 (1-based); ids deliberately out of order
    fake_flowers(root, trnid=[5, 1, 4], valid=[2, 3, 6], tstid=[8, 7],
                 labels=FLOWER_LABELS)
    assert make_fgvc_splits.main(['oxford_flowers', '--root', str(root)]) \
        == 0
    train, val, test = read_splits(root)
    assert train == {'jpg/image_00005.jpg': 0, 'jpg/image_00001.jpg': 1,
                     'jpg/image_00004.jpg': 2}
    assert val == {'jpg/image_00002.jpg': 0, 'jpg/image_00003.jpg': 2,
                   'jpg/image_00006.jpg': 1}
    assert test == {'jpg/image_00008.jpg': 0, 'jpg/image_00007.jpg': 1}
    check_images_resolve(root, 'oxford_flowers', train, val, test)
    # no val ratio / seed: nothing is drawn
    with pytest.raises(SystemExit):
        make_fgvc_splits.main(['oxford_flowers', '--root', str(root),
                               '--seed', '1'])


@pytest.mark.parametrize('ids,match', [
    (([1, 2], [3], [9]), 'tstid image id 9 beyond the 8 labels'),
    (([1, 2], [2], [3]), 'image id 2 is in both trnid and valid'),
])
def test_oxford_flowers_bad_ids(tmp_path, capsys, ids, match):
    fake_flowers(tmp_path / 'f', *ids, labels=FLOWER_LABELS)
    assert make_fgvc_splits.main(['oxford_flowers', '--root',
                                  str(tmp_path / 'f')]) == 1
    assert match in capsys.readouterr().err


# ------------------------------------------------------------ 90/10 split
def test_split_sizes_match_vpts_released_splits():
    """ceil(10%) of the official training sets gives the val sizes of
    VPT's splits (paper Table 6); every class keeps training images."""
    for total, classes, val_size in ((5994, 200, 600), (8144, 196, 815),
                                     (12000, 120, 1200), (23929, 555, 2393)):
        official = {f'{i}.jpg': i % classes for i in range(total)}
        train, val = split_train_val(official, 0.1, seed=0)
        assert (len(train), len(val)) == (total - val_size, val_size)
        assert not set(train) & set(val)
        assert {**train, **val} == official
        assert set(train.values()) == set(range(classes))


def test_split_is_stratified_and_order_independent():
    official = {f'c{c}/{k}.jpg': c for c in range(4) for k in range(20)}
    train, val = split_train_val(official, 0.1, seed=5)
    # 8 val images, 2 per class: 10% of each class exactly
    assert sorted(val.values()) == [0, 0, 1, 1, 2, 2, 3, 3]
    reversed_input = dict(reversed(list(official.items())))
    assert split_train_val(reversed_input, 0.1, seed=5)[1].keys() == \
        val.keys()
