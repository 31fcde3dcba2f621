from .prompted_vit import PromptedVisionTransformer

__all__ = ['PromptedVisionTransformer']
