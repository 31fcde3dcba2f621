# SETR-PUP (Zheng et al., CVPR 2021) on a frozen, prompted ViT-L/16: the
# segmentation setting of DA-VPT (paper App. A.2, Table 2). Sizes and class
# counts are ADE20K's (512x512 crops, 150 classes); the PASCAL Context
# configs override them.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    # SegDataPreProcessor that refuses NaN / inf pixels (they would give
    # NaN logits and class 0 everywhere, silently)
    type='FiniteSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # training batches are padded to the crop size
    size=(512, 512))

model = dict(
    # EncoderDecoder + a non-finite-loss guard; the DA-VPT configs add
    # metric_guidance to it (None here: plain VPT training).
    type='DAVPTEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='PromptedVisionTransformer',
        img_size=(512, 512),
        patch_size=16,
        in_channels=3,
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        mlp_ratio=4,
        # 0-based indices of the paper's layers 9, 12, 18, 24 (1-based).
        # MMSegmentation's stock SETR configs use (9, 14, 19, 23) instead.
        out_indices=(8, 11, 17, 23),
        qkv_bias=True,
        # SETR's base value; its ADE20K and PASCAL Context configs set 0.
        drop_rate=0.1,
        norm_cfg=dict(type='LN', eps=1e-6),
        with_cls_token=True,
        # The ImageNet-21k ViT-L weights (timm / the ViT authors) have a
        # patch-embedding bias. MMSegmentation's VisionTransformer defaults
        # to patch_bias=False (its docstring says True) and loads with
        # strict=False, so the stock SETR config silently drops that bias.
        patch_bias=True,
        # No backbone LayerNorm after layer 24: as in SETR, every head applies
        # its own LayerNorm (norm_layer below) to the features it reads, so a
        # final norm would normalise the decode head's input twice. The
        # checkpoint's final norm (``ln1.*``) is therefore unused.
        final_norm=False,
        interpolate_mode='bilinear',
        # VPT-Deep: 20 fresh prompts in each of the 24 layers (the paper's
        # ~20 prompts, Sec. 5 "Implementation Details").
        num_prompts=20,
        prompt_depth='deep',
        freeze_pretrained=True,
        # ImageNet-21k ViT-L/16 in MMSegmentation's key layout, made with
        #   python tools/convert_vit_checkpoint.py SRC.pth|SRC.npz \
        #       checkpoints/vit-l16_in21k_mmseg.pth
        # from timm's jx_vit_large_p16_384 (the weights SETR and
        # MMSegmentation use: IN-21k, fine-tuned on IN-1k at 384) or the ViT
        # authors' ImageNet-21k ViT-L_16.npz. pos_embed is resized on load.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vit-l16_in21k_mmseg.pth')),
    # The paper's SETR-PUP heads: progressive up-sampling (4 convs, x2 each,
    # 16x in total) on layer 24 ...
    decode_head=dict(
        type='SETRUPHead',
        in_channels=1024,
        channels=256,
        in_index=3,
        num_classes=150,
        dropout_ratio=0,
        norm_cfg=norm_cfg,
        # each SETR head normalises the tokens it reads with its own LN
        norm_layer=dict(type='LN', eps=1e-6, requires_grad=True),
        num_convs=4,
        up_scale=2,
        kernel_size=3,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    # ... and three auxiliary heads (2 convs, x4 each) on layers 9, 12 and 18
    # whose losses are weighted 0.4.
    auxiliary_head=[
        dict(
            type='SETRUPHead',
            in_channels=1024,
            channels=256,
            in_index=i,
            num_classes=150,
            dropout_ratio=0,
            norm_cfg=norm_cfg,
            norm_layer=dict(type='LN', eps=1e-6, requires_grad=True),
            num_convs=2,
            up_scale=4,
            kernel_size=3,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
        for i in (0, 1, 2)
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
