# UPerNet on a frozen, prompted DINOv2 ViT-L/14, as MMSegmentation's
# upernet_vit-b16_ln_mln.py builds it for a ViT: four layers, a
# MultiLevelNeck rescaling them x4, x2, x1, x0.5 to a pyramid, UPerHead, and
# an auxiliary FCNHead on the last level weighted 0.4. ADE20K sizes.
_base_ = ['./prompted_dinov2-l14.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    # SegDataPreProcessor that refuses NaN / inf pixels
    type='FiniteSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='DAVPTEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # layers 6, 12, 18, 24 (1-based): evenly spaced as mmseg's (3, 6, 9, 12)
    # for 12 layers
    backbone=dict(_base_.dinov2_l14_backbone, out_indices=(5, 11, 17, 23)),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[1024, 1024, 1024, 1024],
        out_channels=1024,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[1024, 1024, 1024, 1024],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=3,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
