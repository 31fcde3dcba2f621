"""Inspection helpers (not registered modules): prompt attention maps."""
from .prompt_attention import (default_layers, prepare_image,
                               prompt_attention_maps, prompt_class_names,
                               token_labels)

__all__ = [
    'default_layers', 'prepare_image', 'prompt_attention_maps',
    'prompt_class_names', 'token_labels'
]
