"""Installs mmseg_davpt. The OpenMMLab stack is deliberately not in
install_requires (see requirements/mminstall.txt and the README)."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def ship_configs():
    """Copy ``configs/`` into ``mmseg_davpt/.mim/configs`` and return the
    copied files as package data, so a plain ``pip install .`` carries them
    (``mmseg_davpt.utils.shipped_configs``), as OpenMMLab packages do.
    Editable installs read the checkout's ``configs/`` and get no copy."""
    package = osp.join(HERE, 'mmseg_davpt')
    shipped = osp.join(package, '.mim', 'configs')
    if not {'develop', 'editable_wheel'} & set(sys.argv):
        source = osp.join(HERE, 'configs')
        if osp.isdir(source):  # absent when building from an sdist
            shutil.rmtree(shipped, ignore_errors=True)
            shutil.copytree(source, shipped,
                            ignore=shutil.ignore_patterns('__pycache__'))
    return [osp.relpath(osp.join(root, name), package)
            for root, _, names in os.walk(shipped) for name in names]


def read_requirements(name):
    path = osp.join(HERE, 'requirements', name)
    with open(path) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


version = {}
with open(osp.join(HERE, 'mmseg_davpt', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='mmseg_davpt',
    version=version['__version__'],
    description='DA-VPT (Distribution-Aware Visual Prompt Tuning) for '
    'MMSegmentation and mmpretrain',
    packages=find_packages(include=['mmseg_davpt', 'mmseg_davpt.*']),
    package_data={'mmseg_davpt': ship_configs()},
    python_requires='>=3.10',
    install_requires=['torch>=2.1'] + read_requirements('runtime.txt'),
    extras_require={
        'onedl': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt'),
        'deploy': read_requirements('deploy.txt'),
    },
)
