# VPT-Deep baseline: UPerNet (MultiLevelNeck + UPerHead + FCN auxiliary) on a frozen DINOv2 ViT-L/14, 20 prompts in each of
# the 24 layers. PASCAL Context with 60 classes (background included, the
# paper's protocol), 480x480 crops; 8 GPUs x 2 images/GPU, 80k iterations.
# Not in the paper: no reference number.
_base_ = [
    '../_base_/models/upernet_mln_prompted_dinov2-l14.py',
    '../_base_/datasets/pascal_context_480x480.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_80k.py'
]
crop_size = (480, 480)
num_classes = 60  # 59 classes + background (paper Table 6)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # A 480 px crop is padded to 35x35 patches (490 px): pos_embed is built
    # for that grid and the checkpoint's 37x37 one is resized once on load.
    backbone=dict(img_size=(490, 490)),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes),
    test_cfg=dict(crop_size=crop_size, stride=(320, 320)))
