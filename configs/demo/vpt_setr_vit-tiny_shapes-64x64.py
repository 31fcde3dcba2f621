# Embedded demo, VPT baseline: a tiny prompted ViT (4 layers, 96 dims,
# 8x8 patches) with SETR-PUP heads on the generated "demo shapes" dataset
# (64x64 images, 5 classes incl. background; tools/make_demo_dataset.py).
# A few minutes on 2 CPU cores. The "pretrained" ViT is a seeded random
# timm-layout checkpoint (tools/make_demo_vit.py) converted with
# tools/convert_vit_checkpoint.py, so the demo runs the real weight-loading
# path; no weights are downloaded, which is why mIoU stays modest.
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/demo_shapes'
crop_size = (64, 64)
num_classes = 5
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN when not distributed


def pup_head(in_index, num_convs, loss_weight):
    return dict(
        type='SETRUPHead', in_channels=96, channels=32, in_index=in_index,
        num_classes=num_classes, dropout_ratio=0, norm_cfg=norm_cfg,
        norm_layer=dict(type='LN', eps=1e-6, requires_grad=True),
        num_convs=num_convs, up_scale=2, kernel_size=3, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=loss_weight))


model = dict(
    # EncoderDecoder + a non-finite-loss guard; the DA-VPT configs add
    # metric_guidance to it (None here: plain VPT training).
    type='DAVPTEncoderDecoder',
    data_preprocessor=dict(
        # SegDataPreProcessor that refuses NaN / inf pixels (they would give
        # NaN logits and class 0 everywhere, silently)
        type='FiniteSegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
        seg_pad_val=255, size=crop_size),
    backbone=dict(
        type='PromptedVisionTransformer', img_size=crop_size, patch_size=8,
        embed_dims=96, num_layers=4, num_heads=4, mlp_ratio=4,
        out_indices=(0, 1, 2, 3), norm_cfg=dict(type='LN', eps=1e-6),
        patch_bias=True, final_norm=False, interpolate_mode='bilinear',
        num_prompts=4, freeze_pretrained=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='data/demo_vit/vit-tiny_mmseg.pth')),
    # PUP decode head on the last layer (3 convs x2: 8x8 -> 64x64) and three
    # auxiliary heads with 2 convs and loss weight 0.4, as in the real setup.
    decode_head=pup_head(3, num_convs=3, loss_weight=1.0),
    auxiliary_head=[pup_head(i, num_convs=2, loss_weight=0.4)
                    for i in (0, 1, 2)],
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(48, 48)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # ids, size and channels of every label map, as the model sees them
    dict(type='CheckSegAnnotation', num_classes=num_classes),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # ids, size and channels of every label map, as the model sees them
    dict(type='CheckSegAnnotation', num_classes=num_classes),
    dict(type='PackSegInputs')
]
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='CheckSegAnnotation', num_classes=num_classes)],
        [dict(type='PackSegInputs')]
    ])
]
train_dataloader = dict(
    batch_size=8, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='DemoShapesDataset', data_root=data_root,
                 data_prefix=dict(img_path='img_dir/train',
                                  seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DemoShapesDataset', data_root=data_root,
                 data_prefix=dict(img_path='img_dir/val',
                                  seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=20, by_epoch=False),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=20, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=150)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # saves survive interruption (atomic writes; outdated checkpoints
    # removed only after the new one is complete)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=150, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RNG states in checkpoints: --resume continues the same random draws
    rng_state=dict(type='RNGStateHook'),
    # warns when the first 20 iterations hold no labelled pixel at all
    labelled_pixels=dict(type='LabelledPixelsHook', check_iters=20),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
