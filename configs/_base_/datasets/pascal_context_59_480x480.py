# PASCAL Context, 59-class protocol, SETR's 480x480 setting.
# The 59 classes are scored with background ignored. SETR and the paper's
# Table 6 count 60 classes (59 + background): that protocol is
# pascal_context_480x480.py (the *_setr_pascal_context.py configs).
# Split files and label maps: MMSegmentation's
# tools/dataset_converters/pascal_context.py (SegmentationClassContext/,
# ImageSets/SegmentationContext/{train,val}.txt).
dataset_type = 'PascalContextDataset59'
data_root = 'data/VOCdevkit/VOC2010/'
img_scale = (520, 520)
crop_size = (480, 480)
# Label 0 is background: reduce_zero_label maps it to 255 (ignored) and the
# 59 classes to 0..58. A dataset attribute in MMSegmentation 1.x.
reduce_zero_label = True

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # ids, size and channels of every label map, as the model sees them
    dict(type='CheckSegAnnotation', num_classes=59),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: mIoU is computed against the original-size label map
    dict(type='LoadAnnotations'),
    # ids, size and channels of every label map, as the model sees them
    dict(type='CheckSegAnnotation', num_classes=59),
    dict(type='PackSegInputs')
]
# Multi-scale + flip test (the papers' "MS" mIoU): `tools/test.py --tta`.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='CheckSegAnnotation', num_classes=59)],
            [dict(type='PackSegInputs')],
        ])
]

# 2 images per GPU; with 8 GPUs the batch is SETR's 16.
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/train.txt',
        reduce_zero_label=reduce_zero_label,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        reduce_zero_label=reduce_zero_label,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
