"""PEFT checkpoints: save and load only what prompt tuning changes.

A DA-VPT model is a frozen pretrained ViT plus a small trained part (prompts,
optionally tuned biases, the heads, BN statistics of the heads and the class
-> prompt mapping buffers). A full checkpoint stores the frozen ViT again for
every run (about 1.3 GB for ViT-L); a PEFT checkpoint stores only the trained
part (about 55 MB) and a fingerprint of the frozen weights it was trained on,
so it can be put back on top of the same base ViT and refuses any other.

File layout (an ordinary mmengine checkpoint, loadable with ``torch.load``)::

    {'state_dict': {key: tensor, ...},        # keys as in model.state_dict()
     'meta': {'peft': {'base_checkpoint': str | None,
                       'base_fingerprint': 'sha256 hex',
                       'num_tensors': int,
                       'mmseg_davpt_version': str},
              'dataset_meta': ..., ...}}      # the full checkpoint's meta

Modules: ``state`` (which tensors are the trained part), ``fingerprint``
(hash of the frozen base), ``save_load`` (the file). Typical use::

    model.init_weights()             # loads the base ViT (backbone init_cfg)
    load_peft(model, 'davpt_peft.pth')

``mmseg_davpt.apis.build_model_from_checkpoint`` does both for full and PEFT
files alike.
"""
from .fingerprint import base_fingerprint
from .save_load import (PEFT_META_KEY, check_base_init_cfg,
                        is_peft_checkpoint, load_peft,
                        peft_record, save_peft)
from .state import PACKED_KEYS, peft_state_dict

__all__ = [
    'PACKED_KEYS', 'PEFT_META_KEY', 'base_fingerprint', 'check_base_init_cfg',
    'is_peft_checkpoint', 'load_peft', 'peft_record',
    'peft_state_dict', 'save_peft'
]
