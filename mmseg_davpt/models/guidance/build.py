"""Build a model's metric guidance from its config and the backbone's prompt
layout."""
from typing import Optional

import torch.nn as nn


def build_metric_guidance(registry, cfg: Optional[dict], backbone: nn.Module,
                          **default_args) -> Optional[nn.Module]:
    """``cfg`` built from ``registry`` with the backbone's ``embed_dims``,
    ``guided_layers`` and ``num_guided_prompts`` plus ``default_args`` (e.g.
    the head's ``num_classes``); ``None`` for ``cfg=None`` (plain VPT)."""
    if cfg is None:
        return None
    if not hasattr(backbone, 'forward_with_taps'):
        raise TypeError('metric_guidance needs a prompted backbone such as '
                        'PromptedVisionTransformer, got '
                        f'{type(backbone).__name__}')
    return registry.build(
        cfg,
        default_args=dict(embed_dims=backbone.embed_dims,
                          guided_layers=backbone.guided_layers,
                          num_guided_prompts=backbone.num_guided_prompts,
                          **default_args))
