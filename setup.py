"""Installs mmseg_davpt. The OpenMMLab stack is deliberately not in
install_requires (see requirements/mminstall.txt and the README)."""
import os.path as osp

from setuptools import find_packages, setup


def read_requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


version = {}
with open(osp.join(osp.dirname(__file__), 'mmseg_davpt', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='mmseg_davpt',
    version=version['__version__'],
    description='DA-VPT (Distribution-Aware Visual Prompt Tuning) for '
    'MMSegmentation and mmpretrain',
    packages=find_packages(include=['mmseg_davpt', 'mmseg_davpt.*']),
    python_requires='>=3.10',
    install_requires=['torch>=2.1'] + read_requirements('runtime.txt'),
    extras_require={
        'onedl': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt'),
        'deploy': read_requirements('deploy.txt'),
    },
)
