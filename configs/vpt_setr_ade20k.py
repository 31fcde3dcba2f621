# VPT-Deep baseline: SETR-PUP on a frozen ViT-L/16 (ImageNet-21k), 20 prompts
# in each of the 24 layers, no metric guidance, no bias tuning. ADE20K,
# 512x512 crops; 8 GPUs x 2 images/GPU, 160k iterations.
# Paper (Table 2): 44.08 mIoU single-scale / 46.01 multi-scale, 13.6M
# trainable parameters.
_base_ = [
    './_base_/models/setr_pup_prompted_vit-l16.py',
    './_base_/datasets/ade20k_512x512.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_160k.py'
]
# SETR's ADE20K setting has no dropout in the backbone.
model = dict(backbone=dict(drop_rate=0.))
