# DA-VPT+ on SETR-PUP / DINOv2 ViT-L/14, PASCAL Context with 60 classes,
# 480x480. Not in the paper: no reference number.
_base_ = './davpt_setr_dinov2-l14_pascal_context.py'
# Also train the Key and Value biases of every attention layer
# (24 layers x 2 x 1024 = 49k parameters), as the ViT-L/16 DA-VPT+ configs.
model = dict(backbone=dict(tune_params='kv'))
