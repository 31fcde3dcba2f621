# VPT-Deep on digits 5-9 (3 prompts per layer, frozen pretrained digits ViT,
# linear head). Grid (4 points): lr {3e-3, 1e-2} x weight decay
# {1e-4, 1e-2}. See docs/digits_transfer_cls.md.
_base_ = ['./_base_/vpt_vit-digits.py']
