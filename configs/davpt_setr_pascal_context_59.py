# DA-VPT on SETR-PUP / ViT-L/16, PASCAL Context 59, 480x480; 8 GPUs x 2
# images/GPU, 80k iterations.
# Paper (Table 2): 50.15 mIoU single-scale / 51.04 multi-scale, 13.6M
# trainable parameters.
_base_ = './vpt_setr_pascal_context_59.py'
model = dict(
    # EncoderDecoder + the DA-VPT loss terms (inference is unchanged).
    type='DAVPTEncoderDecoder',
    backbone=dict(
        # Guidance on the last layer (0-based 23 = the paper's layer 24) ...
        guided_layers=(23, ),
        # ... which gets 10 prompts; the other 23 layers keep 20 (the
        # paper's reference segmentation setting).
        num_guided_prompts=10),
    metric_guidance=dict(
        type='SegMetricGuidance',
        prompt_loss_weight=0.05,  # beta (paper: 0.05)
        cls_loss_weight=0.05,  # lambda (paper: 0.05)
        margin=0.1,  # Proxy-Anchor delta (paper: default 0.1)
        alpha=32.0,  # Proxy-Anchor alpha (paper: default 32)
        feature='query',  # compare W_q p with W_q x (paper's better choice)
        pooling='class_masked',  # the target class's tokens (Eq. 4)
        # reduce_zero_label turns the background into the ignore index, so
        # all 59 classes are foreground.
        background_classes=()))
custom_hooks = [
    dict(
        type='ClassPromptMappingHook',
        # k-means refresh about once per epoch (4,996 images / 16 per step
        # = 312 iterations).
        interval=312,
        # initial pass: one epoch across all ranks by default; set e.g.
        # cache_file='work_dirs/davpt_pc59_class_stats.pth' to reuse it.
        init_max_iters=None,
        cache_file=None)
]
