# VTAB-1k (19 tasks, 1000 training images each) in the common file-list
# layout: {data_root}/{train800,val200,train800val200,test}.txt, lines
# "relative/path.jpg <label>" (see tools/dataset_prep/README.md).
# Images are resized to 224x224 directly, no crop, no flip (paper Sec. 5).
# The top-level configs set data_root and task (which gives num_classes).
#
# Splits: train on train800, validate on val200, test on test, so that
# ClsReportHook can report the test accuracy at the epoch chosen on val200
# next to the final-epoch and best-test-epoch ones (configs/cls/README.md).
# The final protocol (the paper's numbers) trains on all 1000 images and
# has no held-out split left; the report then gives the final and the
# best-test epoch only and says why:
#   --cfg-options train_dataloader.dataset.split=train800val200 \
#                 val_dataloader.dataset.split=test
dataset_type = 'VTAB1k'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=None, task=None,
                 split='train800', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=None, task=None,
                 split='val200', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(type=dataset_type, data_root=None, task=None, split='test',
                 pipeline=test_pipeline))
test_evaluator = val_evaluator
