# FGVC (CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs, Stanford Cars)
# with VPT's split files: {data_root}/{train,val,test}.json mapping image
# paths to class ids; train/val is a 90/10 split of the official training
# set (Oxford Flowers: its official train/val; see
# tools/dataset_prep/README.md). Train on train, validate on val, test on
# test: ClsReportHook reports the test accuracy at the epoch chosen on val
# (configs/cls/README.md). The top-level configs set data_root and task
# (which gives num_classes and the image folder).
# Augmentation: RandomResizedCrop 224 + horizontal flip (paper Sec. 5);
# evaluation: resize the short side to 256 and centre-crop 224 (VPT).
dataset_type = 'FGVC'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=None, task=None, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=None, task=None, split='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(type=dataset_type, data_root=None, task=None, split='test',
                 pipeline=test_pipeline))
test_evaluator = val_evaluator
