"""Session fixtures: the generated demo dataset and converted demo ViT."""
import os

import pytest

from mmseg_davpt.datasets import generate_demo_shapes
from tests._helpers import ROOT
from tools.convert_vit_checkpoint import main as convert_vit
from tools.make_demo_vit import main as make_demo_vit

# Tools started as subprocesses (``python tools/train.py``) import test-only
# hooks from ``tests/`` through ``custom_imports``; pytest's ``pythonpath``
# setting reaches this process only, so the repository root goes into the
# environment they inherit.
os.environ['PYTHONPATH'] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
              if p and p != ROOT])


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """``(data_root, vit_checkpoint)`` for the demo configs, in a tmp dir."""
    root = tmp_path_factory.mktemp('demo')
    data_root = generate_demo_shapes(str(root / 'shapes'), num_train=24,
                                     num_val=6, img_size=64, seed=0)
    timm = str(root / 'vit_timm.pth')
    mmseg = str(root / 'vit_mmseg.pth')
    make_demo_vit(['--out', timm])
    convert_vit([timm, mmseg])
    return data_root, mmseg


def _restore_default_scope():
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture(autouse=True)
def _keep_default_scope():
    """A test that calls ``init_default_scope`` (mmseg or mmpretrain) must not
    decide which registry the next test file builds from: each test ends
    with the default scope it started with."""
    yield from _restore_default_scope()


@pytest.fixture(scope='module', autouse=True)
def _keep_default_scope_per_module():
    """The same for module fixtures (a trained demo run, exported models):
    they are set up before any test's own scope is saved, so each test file
    ends with the default scope it started with."""
    yield from _restore_default_scope()
