from .prompted_vit import PromptedVisionTransformer
from .visual_prompts import VisualPrompts

__all__ = ['PromptedVisionTransformer', 'VisualPrompts']
