# DA-VPT+ on UPerNet (MultiLevelNeck + UPerHead + FCN auxiliary) / DINOv2 ViT-L/14, ADE20K 512x512: the DA-VPT prompt
# layout plus "efficient bias" tuning. Not in the paper: no reference number.
_base_ = './davpt_upernet_dinov2-l14_ade20k.py'
# Also train the Key and Value biases of every attention layer
# (24 layers x 2 x 1024 = 49k parameters), as the ViT-L/16 DA-VPT+ configs.
model = dict(backbone=dict(tune_params='kv'))
