# Full fine-tuning reference: plain SETR-PUP / ViT-L/16 (no prompts, every
# weight trains), PASCAL Context with 60 classes (background included, the
# paper's protocol), 480x480; 8 GPUs x 2 images/GPU, 80k iterations.
# Paper (Table 2): 53.69 mIoU single-scale / 55.21 multi-scale, 317.3M
# trainable parameters.
_base_ = './vpt_setr_pascal_context.py'
# The backbone then trains at SETR's lr 1e-3, the heads at 10x (schedule).
model = dict(backbone=dict(num_prompts=0, freeze_pretrained=False))
