# VPT-Deep on a frozen ViT-B/16 with a linear head: the classification
# setting of DA-VPT (paper Sec. 5, App. A). The variants add metric guidance
# and bias tuning; the top-level configs set the checkpoint and the classes.
model = dict(
    # ImageClassifier + a non-finite-loss guard; DA-VPT adds metric_guidance.
    type='DAVPTImageClassifier',
    data_preprocessor=dict(
        # ImageNet mean/std for all three pre-trainings, as VPT does.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='PromptedVisionTransformer',
        img_size=224,
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        # the ViT-B/16 checkpoints (IN-21k, MAE, MoCo v3) have a patch bias
        patch_bias=True,
        # ViT-B/16's LayerNorm eps, as mmpretrain's arch='base'
        norm_cfg=dict(type='LN', eps=1e-6),
        # The [CLS] token after the final LayerNorm feeds the head, as in
        # mmpretrain's VisionTransformer(out_type='cls_token').
        final_norm=True,
        out_type='cls_token',
        out_indices=-1,
        with_cls_token=True,
        # frozen backbone: no stochastic depth (mmpretrain drops both
        # residual branches, MMSegmentation only the FFN one)
        drop_path_rate=0.,
        # VPT-Deep, ~20 prompts per layer (paper Sec. 5 "Implementation
        # Details"); VPT's prompt dropout for classification.
        num_prompts=20,
        prompt_depth='deep',
        prompt_dropout=0.1,
        freeze_pretrained=True,
        # Set by the top-level config (see configs/cls/README.md for the
        # three checkpoints and how to convert them).
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=None,  # set by the top-level config
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
# No metric_guidance here (None: plain VPT); the DA-VPT variants add it.
