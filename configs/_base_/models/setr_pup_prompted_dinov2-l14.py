# SETR-PUP on a frozen, prompted DINOv2 ViT-L/14: the ViT-L/16 SETR-PUP
# model with the DINOv2 backbone. Heads, layers read (9, 12, 18, 24, 1-based)
# and ADE20K sizes as there. The 37x37 feature map is upsampled 16x to
# 592 px; MMSegmentation resizes the logits to the labels.
_base_ = ['./setr_pup_prompted_vit-l16.py', './prompted_dinov2-l14.py']
model = dict(
    backbone=dict(_base_.dinov2_l14_backbone, out_indices=(8, 11, 17, 23)))
