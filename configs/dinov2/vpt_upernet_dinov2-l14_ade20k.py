# VPT-Deep baseline: UPerNet (MultiLevelNeck + UPerHead + FCN auxiliary) on a frozen DINOv2 ViT-L/14, 20 prompts in each of
# the 24 layers, no metric guidance, no bias tuning. ADE20K, 512x512 crops;
# 8 GPUs x 2 images/GPU, 160k iterations (the ViT-L/16 schedule).
# Not in the paper: no reference number; untested at scale.
_base_ = [
    '../_base_/models/upernet_mln_prompted_dinov2-l14.py',
    '../_base_/datasets/ade20k_512x512.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_160k.py'
]
