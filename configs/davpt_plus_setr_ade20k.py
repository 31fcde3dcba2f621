# DA-VPT+ on SETR-PUP / ViT-L/16, ADE20K 512x512: the DA-VPT prompt layout
# plus "efficient bias" tuning; 8 GPUs x 2 images/GPU, 160k iterations.
# Paper (Table 2): 46.47 mIoU single-scale / 47.21 multi-scale, 13.7M
# trainable parameters.
_base_ = './davpt_setr_ade20k.py'
# Also train the Key and Value biases of every attention layer, the bias
# groups the paper found best (24 layers x 2 x 1024 = 49k parameters).
model = dict(backbone=dict(tune_params='kv'))
