# DA-VPT+ on SETR-PUP / ViT-L/16, PASCAL Context 59, 480x480: the DA-VPT
# prompt layout plus "efficient bias" tuning; 8 GPUs x 2 images/GPU, 80k
# iterations.
# Paper (Table 2): 50.40 mIoU single-scale / 51.28 multi-scale, 13.7M
# trainable parameters.
# (The paper's numbers are for the 60-class protocol,
# davpt_plus_setr_pascal_context.py; 59-class mIoU is not directly comparable.)
_base_ = './davpt_setr_pascal_context_59.py'
# Also train the Key and Value biases of every attention layer, the bias
# groups the paper found best (24 layers x 2 x 1024 = 49k parameters).
model = dict(backbone=dict(tune_params='kv'))
