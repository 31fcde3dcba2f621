from .class_prompt_mapping_hook import ClassPromptMappingHook

__all__ = ['ClassPromptMappingHook']
