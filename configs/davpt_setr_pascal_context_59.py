# DA-VPT on SETR-PUP / ViT-L/16, PASCAL Context 59, 480x480; 8 GPUs x 2
# images/GPU, 80k iterations.
# Paper (Table 2): 50.15 mIoU single-scale / 51.04 multi-scale, 13.6M
# trainable parameters.
# (The paper's numbers are for the 60-class protocol,
# davpt_setr_pascal_context.py; 59-class mIoU is not directly comparable.)
_base_ = [
    './vpt_setr_pascal_context_59.py', './_base_/davpt/seg_metric_guidance.py'
]
model = dict(
    backbone=dict(
        # Guidance on the last layer (0-based 23 = the paper's layer 24) ...
        guided_layers=(23, ),
        # ... which gets 10 prompts; the other 23 layers keep 20 (the
        # paper's reference segmentation setting).
        num_guided_prompts=10),
    metric_guidance=_base_.davpt_metric_guidance)
# k-means refresh about once per epoch (4,996 images / 16 per step).
custom_hooks = [dict(_base_.davpt_mapping_hook, interval=312)]
