"""VTAB1k / FGVC classification datasets, the generated demo folders and the
dataset preparation tools (CPU, small generated data)."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('mmpretrain')

from mmpretrain.registry import DATASETS  # noqa: E402

from mmseg_davpt.datasets import (FGVC, FGVC_TASKS, VTAB1k,  # noqa: E402
                                  VTAB_TASKS, generate_cls_folders)
from tools.dataset_prep import check_cls_dataset  # noqa: E402
from tools.dataset_prep import make_fgvc_splits  # noqa: E402
from tools.make_cls_demo_dataset import main as make_demo  # noqa: E402

VTAB_COUNTS = dict(train800=12, val200=4, test=8)
FGVC_COUNTS = dict(train=12, val=4, test=8)


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """The datasets and their pipelines come from mmpretrain's registry."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='module')
def vtab_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vtab') / 'task')
    return generate_cls_folders(root, 'vtab', num_classes=4,
                                per_split=VTAB_COUNTS, img_size=16)


@pytest.fixture(scope='module')
def fgvc_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fgvc') / 'birds')
    return generate_cls_folders(root, 'fgvc', num_classes=4,
                                per_split=FGVC_COUNTS, img_size=16)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def labels_of(dataset):
    return [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))]


# --------------------------------------------------------------- VTAB-1k
def test_vtab_generated_splits_load(vtab_root):
    sizes = dict(VTAB_COUNTS, train800val200=16)
    for split, size in sizes.items():
        ds = VTAB1k(vtab_root, split, num_classes=4)
        assert len(ds) == size
        assert sorted(set(labels_of(ds))) == [0, 1, 2, 3]
        info = ds.get_data_info(0)
        assert osp.isfile(info['img_path'])
        assert info['img_path'].startswith(vtab_root)
    assert ds.metainfo['classes'] == ('0', '1', '2', '3')
    test = VTAB1k(vtab_root, 'test', num_classes=4)
    rel, label = open(osp.join(vtab_root, 'test.txt')).readline().split()
    assert rel.startswith('images/test/')
    assert int(label) == labels_of(test)[0]
    assert test.get_data_info(0)['img_path'] == osp.join(vtab_root, rel)
    both = VTAB1k(vtab_root, 'train800val200', num_classes=4)
    parts = (VTAB1k(vtab_root, 'train800', num_classes=4),
             VTAB1k(vtab_root, 'val200', num_classes=4))
    assert labels_of(both) == labels_of(parts[0]) + labels_of(parts[1])


def test_vtab_pipeline_and_registry(vtab_root):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=40, edge='short'),
        dict(type='Resize', scale=(24, 24)),
        dict(type='PackInputs'),
    ]
    ds = DATASETS.build(dict(type='VTAB1k', data_root=vtab_root,
                             split='test', task='my_task', num_classes=4,
                             classes=['a', 'b', 'c', 'd'],
                             pipeline=pipeline, test_mode=True))
    out = ds[1]
    assert tuple(out['inputs'].shape) == (3, 24, 24)
    assert out['data_samples'].gt_label.tolist() == [labels_of(ds)[1]]
    assert out['data_samples'].img_path == ds.get_data_info(1)['img_path']
    assert ds.metainfo['classes'] == ('a', 'b', 'c', 'd')
    assert ds.metainfo['task'] == 'my_task'


def test_vtab_task_table(vtab_root):
    assert len(VTAB_TASKS) == 19
    assert VTAB_TASKS['cifar'] == 100 and VTAB_TASKS['sun397'] == 397
    ds = VTAB1k(vtab_root, 'val200', task='clevr_count')
    assert ds.num_classes == 8 and len(ds.metainfo['classes']) == 8
    with pytest.raises(ValueError, match='dtd.*47.*num_classes=4'):
        VTAB1k(vtab_root, 'val200', task='dtd', num_classes=4)
    with pytest.raises(ValueError, match='num_classes'):
        VTAB1k(vtab_root, 'val200')
    with pytest.raises(ValueError, match='split'):
        VTAB1k(vtab_root, 'train', num_classes=4)


def test_vtab_missing_split_file(tmp_path):
    write(tmp_path / 'train800.txt', 'a.jpg 0\n')
    with pytest.raises(FileNotFoundError) as e:
        VTAB1k(str(tmp_path), 'test', num_classes=2)
    assert 'test.txt' in str(e.value) and 'train800.txt' in str(e.value)


@pytest.mark.parametrize('bad,line,match', [
    ('just_a_path.jpg', 2, 'expected'),
    ('b.jpg two', 2, 'not an integer'),
    ('b.jpg 3', 2, r'outside \[0, 3\)'),
    ('b.jpg -1', 2, 'outside'),
])
def test_vtab_bad_lines(tmp_path, bad, line, match):
    path = write(tmp_path / 'val200.txt', f'a.jpg 0\n{bad}\nc.jpg 1\n')
    with pytest.raises(ValueError, match=match) as e:
        VTAB1k(str(tmp_path), 'val200', num_classes=3)
    assert str(path) in str(e.value) and f'line {line}' in str(e.value)


def test_vtab_empty_split(tmp_path):
    path = write(tmp_path / 'test.txt', '\n\n')
    with pytest.raises(ValueError, match='no samples') as e:
        VTAB1k(str(tmp_path), 'test', num_classes=3)
    assert str(path) in str(e.value)


def test_vtab_path_with_spaces(tmp_path):
    write(tmp_path / 'test.txt', 'images/my image.jpg 1\n')
    ds = VTAB1k(str(tmp_path), 'test', num_classes=2)
    assert ds.get_data_info(0)['img_path'].endswith('images/my image.jpg')


# ------------------------------------------------------------------ FGVC
def test_fgvc_generated_splits_load(fgvc_root):
    for split, size in FGVC_COUNTS.items():
        ds = FGVC(fgvc_root, split, image_prefix='images', num_classes=4)
        assert len(ds) == size
        assert sorted(set(labels_of(ds))) == [0, 1, 2, 3]
        info = ds.get_data_info(0)
        assert osp.isfile(info['img_path'])
        assert info['img_path'].startswith(osp.join(fgvc_root, 'images'))
        raw = json.load(open(osp.join(fgvc_root, f'{split}.json')))
        assert labels_of(ds) == list(raw.values())  # ids already 0..3
    # a FGVC_TASKS name brings its image prefix and class count
    assert FGVC_TASKS['cub'] == dict(num_classes=200, image_prefix='images')
    with pytest.warns(UserWarning, match='only 4 of 200'):
        cub = FGVC(fgvc_root, 'val', task='cub')
    assert cub.num_classes == 200 and len(cub.metainfo['classes']) == 200


def test_fgvc_pipeline(fgvc_root):
    ds = FGVC(fgvc_root, 'train', image_prefix='images', pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs')])
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 32, 32)
    assert out['data_samples'].gt_label.item() == labels_of(ds)[0]


def test_fgvc_wrong_image_prefix(fgvc_root):
    with pytest.raises(FileNotFoundError, match="image_prefix=''"):
        FGVC(fgvc_root, 'val')


def test_fgvc_remaps_union_of_splits(tmp_path):
    # ids 10/20/30; val lacks 20 and test lacks 10: per-split remapping (as
    # in VPT) would give val 30 -> 1, the union keeps it at 2 everywhere.
    write(tmp_path / 'train.json', json.dumps({'a.jpg': 10, 'b.jpg': 20,
                                               'c.jpg': 30}))
    write(tmp_path / 'val.json', json.dumps({'d.jpg': 30, 'e.jpg': 10}))
    write(tmp_path / 'test.json', json.dumps({'f.jpg': 20, 'g.jpg': '30'}))
    for name in 'abcdefg':
        Image.new('RGB', (4, 4)).save(tmp_path / f'{name}.jpg')
    kw = dict(data_root=str(tmp_path), num_classes=3)
    assert labels_of(FGVC(split='train', **kw)) == [0, 1, 2]
    assert labels_of(FGVC(split='val', **kw)) == [2, 0]
    assert labels_of(FGVC(split='test', **kw)) == [1, 2]
    assert FGVC(split='val', **kw).metainfo['classes'] == ('10', '20', '30')
    # without num_classes the count comes from the ids found
    assert FGVC(str(tmp_path), 'val').num_classes == 3


def test_fgvc_missing_file(tmp_path):
    write(tmp_path / 'train.json', '{"a.jpg": 0}')
    with pytest.raises(FileNotFoundError) as e:
        FGVC(str(tmp_path), 'test', num_classes=2)
    assert 'test.json' in str(e.value) and 'train.json' in str(e.value)


def test_fgvc_bad_json(tmp_path):
    path = write(tmp_path / 'train.json', '{\n "a.jpg": 0,\n "b.jpg" 1\n}')
    with pytest.raises(ValueError, match='line 3, column 10') as e:
        FGVC(str(tmp_path), 'train', num_classes=2)
    assert str(path) in str(e.value)


@pytest.mark.parametrize('value', ['"x"', '1.5', 'true', 'null'])
def test_fgvc_non_integer_id(tmp_path, value):
    path = write(tmp_path / 'val.json',
                 f'{{"a.jpg": 0, "dir/b.jpg": {value}}}')
    with pytest.raises(ValueError, match='not an integer') as e:
        FGVC(str(tmp_path), 'val', num_classes=2)
    assert str(path) in str(e.value) and 'dir/b.jpg' in str(e.value)


def test_fgvc_more_ids_than_classes(tmp_path):
    write(tmp_path / 'train.json', '{"a.jpg": 0, "b.jpg": 1}')
    write(tmp_path / 'test.json', '{"c.jpg": 2}')
    with pytest.raises(ValueError, match='3 distinct class ids') as e:
        FGVC(str(tmp_path), 'train', num_classes=2)
    assert 'train.json' in str(e.value) and 'test.json' in str(e.value)


def test_fgvc_empty_split(tmp_path):
    path = write(tmp_path / 'val.json', '{}')
    with pytest.raises(ValueError, match='no samples') as e:
        FGVC(str(tmp_path), 'val', num_classes=2)
    assert str(path) in str(e.value)


# ------------------------------------------------------- demo generator
def test_demo_generator_is_deterministic(tmp_path):
    a = generate_cls_folders(str(tmp_path / 'a'), 'vtab', 3,
                             dict(train800=6, val200=3, test=3), 16, seed=1)
    b = generate_cls_folders(str(tmp_path / 'b'), 'vtab', 3,
                             dict(train800=6, val200=3, test=3), 16, seed=1)
    for name in ('train800val200.txt', 'images/test/000002.jpg'):
        assert open(osp.join(a, name), 'rb').read() == \
            open(osp.join(b, name), 'rb').read()
    with pytest.raises(ValueError, match='unknown splits'):
        generate_cls_folders(str(tmp_path / 'c'), 'fgvc',
                             per_split=dict(train800=4))


def test_demo_classes_are_visually_separable(vtab_root):
    # A nearest-mean colour classifier must already be near perfect.
    def feats(split):
        ds = VTAB1k(vtab_root, split, num_classes=4)
        x = np.stack([np.asarray(Image.open(d['img_path']), np.float32)
                      .reshape(-1, 3).max(0) for d in
                      map(ds.get_data_info, range(len(ds)))])
        return x, np.array(labels_of(ds))
    x, y = feats('train800val200')
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    xt, yt = feats('test')
    pred = ((xt[:, None] - means[None])**2).sum(-1).argmin(1)
    assert (pred == yt).mean() >= 0.75


def test_make_cls_demo_cli(tmp_path, capsys):
    out = str(tmp_path / 'demo')
    make_demo(['--layout', 'fgvc', '--out', out, '--num-classes', '3',
               '--per-split', 'train=6,val=3,test=3', '--img-size', '16'])
    assert "image_prefix='images'" in capsys.readouterr().out
    assert len(FGVC(out, 'test', image_prefix='images')) == 3


# ------------------------------------------------------ preparation tools
def fake_cub(root, num_classes=10, train_per_class=10, test_per_class=5):
    """The three official CUB files (1-based class ids) and tiny images."""
    images, labels, is_train = [], [], []
    train, test = {}, {}
    image_id = 0
    for c in range(1, num_classes + 1):
        for k in range(train_per_class + test_per_class):
            image_id += 1
            rel = f'{c:03d}.Bird_{c}/Bird_{c}_{k:04d}.jpg'
            flag = int(k < train_per_class)
            images.append(f'{image_id} {rel}')
            labels.append(f'{image_id} {c}')
            is_train.append(f'{image_id} {flag}')
            (train if flag else test)[rel] = c - 1
            path = root / 'images' / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new('RGB', (4, 4), (c * 20, 0, 0)).save(path)
    for name, rows in (('images.txt', images),
                       ('image_class_labels.txt', labels),
                       ('train_test_split.txt', is_train)):
        (root / name).write_text('\n'.join(rows) + '\n')
    return train, test


def test_make_fgvc_splits_cub(tmp_path):
    root = tmp_path / 'CUB_200_2011'
    official_train, official_test = fake_cub(root)
    assert make_fgvc_splits.main(['cub', '--root', str(root)]) == 0
    train, val, test = (json.load(open(root / f'{s}.json'))
                        for s in ('train', 'val', 'test'))
    assert (len(train), len(val)) == (90, 10)
    assert not set(train) & set(val)
    assert {**train, **val} == official_train  # labels now 0-based
    assert test == official_test
    # stratified: every class keeps training images
    assert set(train.values()) == set(range(10))
    # fixed seed: the same split again, a different seed another one
    out2, out3 = tmp_path / 'again', tmp_path / 'seed1'
    make_fgvc_splits.main(['cub', '--root', str(root), '--out', str(out2)])
    make_fgvc_splits.main(['cub', '--root', str(root), '--out', str(out3),
                           '--seed', '1'])
    assert json.load(open(out2 / 'val.json')) == val
    assert json.load(open(out3 / 'val.json')) != val
    # the result loads and checks as an FGVC dataset
    with pytest.warns(UserWarning, match='only 10 of 200'):
        ds = FGVC(str(root), 'val', task='cub')
    assert ds.num_classes == 200 and len(ds) == 10
    assert check_cls_dataset.main([str(root), '--num-classes', '10',
                                   '--image-prefix', 'images']) == 0


def test_make_fgvc_splits_lists(tmp_path):
    train = write(tmp_path / 'train_list.txt',
                  ''.join(f'd{c}/{k}.jpg {c}\n' for c in (1, 2, 5)
                          for k in range(10)))
    test = write(tmp_path / 'test_list.txt', 'd1/t.jpg 1\nd5/t.jpg 5\n')
    out = tmp_path / 'out'
    assert make_fgvc_splits.main(['lists', '--train-list', str(train),
                                  '--test-list', str(test), '--out',
                                  str(out), '--val-ratio', '0.2']) == 0
    splits = {s: json.load(open(out / f'{s}.json'))
              for s in ('train', 'val', 'test')}
    assert (len(splits['train']), len(splits['val'])) == (24, 6)
    assert splits['test'] == {'d1/t.jpg': 0, 'd5/t.jpg': 2}
    bad = write(tmp_path / 'bad.txt', 'a.jpg 1\nb.jpg x\n')
    assert make_fgvc_splits.main(['lists', '--train-list', str(bad),
                                  '--test-list', str(test), '--out',
                                  str(out)]) == 1


def test_check_cls_dataset(vtab_root, fgvc_root, tmp_path, capsys):
    assert check_cls_dataset.main([vtab_root, '--num-classes', '4']) == 0
    out = capsys.readouterr().out
    assert 'train800val200:     16 images' in out and 'OK' in out
    assert check_cls_dataset.main([fgvc_root, '--image-prefix',
                                   'images']) == 0
    assert 'test:      8 images,    4 of 4 classes' in capsys.readouterr().out
    # a VTAB folder named after its task needs no --task
    task = generate_cls_folders(str(tmp_path / 'dmlab'), 'vtab', 6,
                                dict(train800=6, val200=6, test=6), 8)
    assert check_cls_dataset.main([task]) == 0
    # problems: unknown folder name, missing image, bad label, no splits
    bad = generate_cls_folders(str(tmp_path / 'bad'), 'vtab', 2,
                               dict(train800=4, val200=2, test=2), 8)
    assert check_cls_dataset.main([bad]) == 1
    assert 'pass --task or --num-classes' in capsys.readouterr().err
    (tmp_path / 'bad/images/test/000001.jpg').unlink()
    assert check_cls_dataset.main([bad, '--num-classes', '2']) == 1
    err = capsys.readouterr().err
    assert 'test.txt' in err and '1 of 2 images not found' in err
    write(tmp_path / 'bad/val200.txt', 'images/val200/000000.jpg 7\n')
    assert check_cls_dataset.main([bad, '--num-classes', '2']) == 1
    assert 'val200.txt, line 1' in capsys.readouterr().err
    assert check_cls_dataset.main([str(tmp_path / 'nothing_here')]) == 1
    assert 'no VTAB-1k' in capsys.readouterr().err
