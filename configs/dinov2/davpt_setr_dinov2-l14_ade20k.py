# DA-VPT on SETR-PUP / DINOv2 ViT-L/14, ADE20K 512x512;
# 8 GPUs x 2 images/GPU, 160k iterations. Not in the paper: no reference
# number. Guidance as in the ViT-L/16 config davpt_setr_ade20k.py.
_base_ = [
    './vpt_setr_dinov2-l14_ade20k.py',
    '../_base_/davpt/seg_metric_guidance.py'
]
model = dict(
    backbone=dict(
        # As the ViT-L/16 configs (24 layers too): guidance on the last layer
        # (0-based 23 = layer 24) ...
        guided_layers=(23, ),
        # ... which gets 10 prompts; the other 23 layers keep 20.
        num_guided_prompts=10),
    metric_guidance=_base_.davpt_metric_guidance)
# k-means refresh about once per epoch (20,210 images / 16 per step).
custom_hooks = [dict(_base_.davpt_mapping_hook, interval=1263)]
