"""One implementation, two registries: mmseg's and (when installed)
mmpretrain's.

mmengine looks a type up in the registry of the config's ``default_scope``
and its parents, never in sibling scopes. A segmentation config
(``default_scope='mmseg'``) and a classification config
(``default_scope='mmpretrain'``) therefore both need the class registered in
their own scope. mmpretrain stays optional for segmentation users.
"""
import importlib
from typing import Optional


def mmpretrain_registry(name: str) -> Optional[object]:
    """mmpretrain's registry called ``name`` (e.g. ``'MODELS'``), or ``None``
    when mmpretrain is not installed."""
    try:
        module = importlib.import_module('mmpretrain.registry')
    except ImportError:
        return None
    return getattr(module, name)


def also_in_mmpretrain(name: str):
    """Class decorator: register the class in mmpretrain's registry ``name``
    too (no-op without mmpretrain)."""

    def decorate(cls):
        registry = mmpretrain_registry(name)
        if registry is not None:
            registry.register_module(module=cls)
        return cls

    return decorate
