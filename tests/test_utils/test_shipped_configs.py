"""Configs are found outside a source checkout: the ``configs/...`` paths
that tools, benchmarks and the recipe reader default to resolve to the
checkout's folder, else to the copy shipped inside the package."""
import os
import os.path as osp
import shutil

import pytest

from mmseg_davpt.utils import shipped_configs
from mmseg_davpt.utils.cls_recipes import read_recipes
from mmseg_davpt.utils.config import load_config
from mmseg_davpt.utils.shipped_configs import configs_root, find_config

from tests._helpers import ROOT


def test_configs_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not osp.exists('configs')
    found = find_config('configs/demo/davpt_setr_vit-tiny_shapes-64x64.py')
    assert found == osp.join(ROOT, 'configs', 'demo',
                             'davpt_setr_vit-tiny_shapes-64x64.py')
    assert load_config('configs/demo/davpt_setr_vit-tiny_shapes-64x64.py'
                       ).model.type == 'DAVPTEncoderDecoder'


def test_packaged_copy_is_used_without_a_checkout(tmp_path, monkeypatch):
    packaged = tmp_path / 'pkg' / '.mim' / 'configs'
    (packaged / 'cls').mkdir(parents=True)
    with open(packaged / 'cls' / 'recipes.csv', 'w') as f:
        f.write('yaml_file,lr\nfirst.yaml,0.1\n')
    (packaged / 'demo').mkdir()
    shutil.copy(osp.join(ROOT, 'configs', 'demo',
                         'vpt_setr_vit-tiny_shapes-64x64.py'),
                packaged / 'demo' / 'vpt_demo.py')
    shutil.copytree(osp.join(ROOT, 'configs', '_base_'), packaged / '_base_')
    monkeypatch.setattr(shipped_configs, 'SOURCE_CONFIGS',
                        str(tmp_path / 'no_checkout'))
    monkeypatch.setattr(shipped_configs, 'PACKAGED_CONFIGS', str(packaged))
    monkeypatch.chdir(tmp_path)
    assert configs_root() == str(packaged)
    assert read_recipes() == [dict(yaml_file='first.yaml', lr='0.1')]
    # the shipped base files resolve relative to the shipped config
    cfg = load_config(os.path.join('configs', 'demo', 'vpt_demo.py'))
    assert cfg.model.backbone.type == 'PromptedVisionTransformer'
    with pytest.raises(FileNotFoundError,
                       match=r'no config at configs/missing\.py \(nor at '):
        find_config('configs/missing.py')


def test_no_configs_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped_configs, 'SOURCE_CONFIGS', str(tmp_path / 'a'))
    monkeypatch.setattr(shipped_configs, 'PACKAGED_CONFIGS',
                        str(tmp_path / 'b'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='neither in a source '
                       'checkout .*a.* nor shipped with the package .*b'):
        read_recipes()
    with pytest.raises(FileNotFoundError, match='no config at configs/x.py'):
        load_config('configs/x.py')
    with pytest.raises(FileNotFoundError, match=r'^no config at other\.py$'):
        find_config('other.py')
