# PASCAL Context, 60-class protocol (59 object / stuff classes + background),
# SETR's 480x480 setting. This is the variant the DA-VPT paper reports
# (Table 2; Table 6: 60 classes, 4,998 train / 5,105 val images): label 0
# 'background' is a class that is trained and scored, not ignored.
# Same images, label maps, split files and pipelines as the 59-class base
# (MMSegmentation's pascal_context.py converter); only the dataset class
# and the label handling differ.
_base_ = './pascal_context_59_480x480.py'
# MMSegmentation's 60-class dataset: classes[0] == 'background'.
dataset_type = 'PascalContextDataset'
# Keep label 0 as class 0 (the 59-class base maps it to the ignore index).
reduce_zero_label = False
# The same pipelines, with the label check counting background as class 0.
train_pipeline = [
    dict(t, num_classes=60) if t['type'] == 'CheckSegAnnotation' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, num_classes=60) if t['type'] == 'CheckSegAnnotation' else t
    for t in _base_.test_pipeline
]
tta_pipeline = [
    _base_.tta_pipeline[0],
    dict(
        _base_.tta_pipeline[1],
        transforms=[[
            dict(t, num_classes=60) if t['type'] == 'CheckSegAnnotation' else t
            for t in step
        ] for step in _base_.tta_pipeline[1]['transforms']]),
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, reduce_zero_label=reduce_zero_label,
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, reduce_zero_label=reduce_zero_label,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
