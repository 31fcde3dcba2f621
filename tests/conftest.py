"""Session fixtures: the generated demo dataset and converted demo ViT."""
import pytest

from mmseg_davpt.datasets import generate_demo_shapes
from tools.convert_vit_checkpoint import main as convert_vit
from tools.make_demo_vit import main as make_demo_vit


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
