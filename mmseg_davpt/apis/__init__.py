"""Entry points for trained checkpoints: building a model from one (full or
PEFT, strictly), loading one into a built model, checking one before a
resume, and inference (``init_davpt_model``, ``DAVPTInferencer``)."""
from .checkpoint import (CheckpointMismatchError, build_model_from_checkpoint,
                         load_model_checkpoint)
from .inference import (DAVPTInferencer, config_dataset_meta,
                        init_davpt_model, read_image)
from .resume import check_resume_checkpoint

__all__ = [
    'CheckpointMismatchError', 'DAVPTInferencer',
    'build_model_from_checkpoint', 'check_resume_checkpoint',
    'config_dataset_meta', 'init_davpt_model', 'load_model_checkpoint',
    'read_image'
]
