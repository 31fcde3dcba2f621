# Full fine-tuning reference: plain SETR-PUP / ViT-L/16 (no prompts, every
# weight trains), ADE20K 512x512; 8 GPUs x 2 images/GPU, 160k iterations.
# Paper (Table 2): 47.60 mIoU single-scale / 49.18 multi-scale, 317.3M
# trainable parameters.
_base_ = './vpt_setr_ade20k.py'
# The backbone then trains at SETR's lr 1e-3, the heads at 10x (schedule).
model = dict(backbone=dict(num_prompts=0, freeze_pretrained=False))
