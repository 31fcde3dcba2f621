"""Building a model from a config, and finding it inside runner wrappers."""
import torch.nn as nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The segmentor / classifier inside DDP-style wrappers (``.module``)
    and test-time-augmentation models (``BaseTTAModel.module``); ``model``
    itself when it is not wrapped."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def build_model(cfg) -> nn.Module:
    """``cfg.model`` built in the config's ``default_scope`` (``'mmseg'``
    when unset; ``'mmpretrain'`` for classification configs), randomly
    initialised: ``init_weights`` is not called, nothing is read."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model)
