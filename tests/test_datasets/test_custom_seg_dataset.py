"""A user's own segmentation folder (images/*.jpg + palette masks/*.png,
four named classes, 0 = unlabelled): tools/dataset_prep/check_seg_dataset.py
passes it and names every planted defect in a bad copy, and the documented
config (configs/demo/davpt_setr_vit-tiny_custom-folder.py) trains and
evaluates on it."""
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from tests._helpers import run_tool

from tests._helpers import ROOT
CONFIG = osp.join(ROOT, 'configs/demo/davpt_setr_vit-tiny_custom-folder.py')
CLASSES = ['disc', 'square', 'triangle', 'ring']
PALETTE = [0, 0, 0, 220, 20, 60, 0, 128, 255, 255, 200, 0, 60, 180, 75]


def palette_png(ids: np.ndarray, path: str) -> None:
    img = Image.fromarray(ids.astype(np.uint8), mode='P')
    img.putpalette(PALETTE)
    img.save(path)


@pytest.fixture(scope='module')
def my_folder(demo_data, tmp_path_factory):
    """The demo shapes rewritten as a user's folder: JPEG images, palette
    PNG masks whose index 0 is 'unlabelled' (the demo's background) and
    1..4 the shapes."""
    src, vit = demo_data
    root = tmp_path_factory.mktemp('my_shapes')
    for split in ('train', 'val'):
        os.makedirs(root / 'images' / split)
        os.makedirs(root / 'masks' / split)
        for name in sorted(os.listdir(osp.join(src, 'img_dir', split))):
            stem = name[:-4]
            with Image.open(osp.join(src, 'img_dir', split, name)) as img:
                img.convert('RGB').save(root / 'images' / split
                                        / f'{stem}.jpg', quality=95)
            with Image.open(osp.join(src, 'ann_dir', split, name)) as ann:
                ids = np.asarray(ann)
            palette_png(ids, str(root / 'masks' / split / f'{stem}.png'))
    return str(root), vit


def check(argv):
    from tools.dataset_prep.check_seg_dataset import main
    return main(argv)


def test_checker_passes_the_good_folder(my_folder, capsys):
    root, _ = my_folder
    assert check([root, '--classes', *CLASSES, '--reduce-zero-label']) == 0
    out = capsys.readouterr().out
    assert 'images/*.jpg, labels masks/*.png' in out
    assert '== split train: 24 image/label pairs' in out
    assert '== split val: 6 image/label pairs' in out
    assert 'label modes: P x24' in out
    assert "palette ('P') indices used: [0, 1, 2, 3, 4]" in out
    shares = re.search(r'split train.*?pixel share: (.*?); ignored ([\d.]+)%',
                       out, re.S)
    named = dict(re.findall(r'(\w+) ([\d.]+)%', shares.group(1)))
    assert list(named) == CLASSES
    # the background (index 0) is unlabelled: the four shares and the
    # ignored share add up to the whole
    total = sum(float(v) for v in named.values()) + float(shares.group(2))
    assert total == pytest.approx(100, abs=0.05)
    assert 'ERROR' not in out and out.rstrip().endswith('drop data')
    # without reduce_zero_label the shape ids 1..4 include 4 = N
    assert check([root, '--classes', *CLASSES]) == 1
    assert 'values outside [0, 4) that are not the ignore index 255: [4]' \
        in capsys.readouterr().out


def test_checker_names_each_planted_defect(my_folder, tmp_path, capsys):
    root, _ = my_folder
    bad = str(tmp_path / 'bad')
    shutil.copytree(root, bad)
    img, ann = osp.join(bad, 'images', 'train'), osp.join(bad, 'masks',
                                                          'train')
    os.remove(osp.join(ann, '0000.png'))  # image without label
    os.remove(osp.join(img, '0001.jpg'))  # label without image
    os.rename(osp.join(img, '0002.jpg'), osp.join(img, '0002.JPG'))
    os.remove(osp.join(ann, '0002.png'))  # (its label would be orphaned)
    Image.new('P', (32, 32)).save(osp.join(ann, '0003.png'))  # size
    Image.new('RGB', (64, 64), (220, 20, 60)).save(
        osp.join(ann, '0004.png'))  # colour map
    palette_png(np.full((64, 64), 7), osp.join(ann, '0005.png'))  # id 7
    # a 16-bit label with valid ids is fine, and reported as such
    Image.fromarray(np.full((64, 64), 2, np.uint16)).save(
        osp.join(ann, '0006.png'))
    shutil.copy(osp.join(ann, '0007.png'), osp.join(ann, 'notes.txt'))
    # val: 'ring' (id 4) painted out of every mask
    for name in os.listdir(osp.join(bad, 'masks', 'val')):
        path = osp.join(bad, 'masks', 'val', name)
        with Image.open(path) as m:
            ids = np.asarray(m).copy()
        ids[ids == 4] = 0
        palette_png(ids, path)
    assert check([bad, '--classes', *CLASSES, '--reduce-zero-label']) == 1
    out = capsys.readouterr().out
    train = out.split('== split val')[0]
    val = out.split('== split val')[1]
    assert '1 images without a label' in train and '0000.jpg' in train
    assert '1 labels without an image (silently unused): 0001.png' in train
    assert "do not end in '.jpg' and are skipped" in train
    assert '0002.JPG' in train
    assert "do not end in '.png' and are never read: notes.txt" in train
    assert '1 label maps differ in size from their image: 0003 (image ' \
        '64x64, label 32x32)' in train
    assert '1 label maps are colour images' in train and '0004 (RGB' in train
    assert 'values outside [0, 4) that are not the ignore index 255: [6] ' \
        'in 1 label maps: 0005' in train  # 7 - 1 after reduce_zero_label
    assert 'I;16 x1' in train and 'RGB x1' in train
    assert "WARNING: classes never present: ['ring']" in val
    assert 'ERROR' not in val
    assert train.count('ERROR') == 7
    assert out.rstrip().endswith('FAILED: 7 problem(s) that make training '
                                 'fail or drop data')


@pytest.mark.slow
def test_documented_config_trains_and_evaluates(my_folder, tmp_path):
    root, vit = my_folder
    opts = [f'model.backbone.init_cfg.checkpoint={vit}']
    opts += [f'{s}_dataloader.dataset.data_root={root}'
             for s in ('train', 'val', 'test')]
    log = run_tool(
        'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', *opts, 'train_cfg.max_iters=4',
        'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
        'default_hooks.logger.interval=2', 'custom_hooks.0.interval=2',
        'train_dataloader.batch_size=4')
    assert 'DA-VPT: initial mapping (iter 0)' in log
    assert re.search(r'davpt\.loss_prompt: [0-9.]+', log)
    # the per-class table names the user's classes, and nothing else
    for name in CLASSES:
        assert re.search(rf'\|\s+{name}\s+\|', log), name
    assert not re.search(r'\|\s+background\s+\|', log)
    miou = float(re.findall(r'mIoU: ([0-9.]+)', log)[-1])
    assert 0.0 <= miou <= 100.0
