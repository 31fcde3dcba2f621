"""tools/demo.sh: valid bash, and every tool and config it names exists
(the demo itself runs for minutes; its numbers are in the README)."""
import os.path as osp
import re
import subprocess

from tests._helpers import ROOT
DEMO = osp.join(ROOT, 'tools', 'demo.sh')


def test_demo_is_valid_bash():
    subprocess.run(['bash', '-n', DEMO], check=True)


def test_every_named_tool_and_config_exists():
    with open(DEMO) as f:
        text = f.read()
    paths = set(re.findall(r'\b((?:tools|configs)/[\w./-]+\.(?:py|sh))',
                           text))
    assert 'tools/pretrain_digits_vit.py' in paths
    assert 'configs/digits/seg/davpt_setr_vit-digits_scenes-64x64.py' in paths
    missing = sorted(p for p in paths if not osp.isfile(osp.join(ROOT, p)))
    assert not missing
