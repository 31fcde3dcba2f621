# Few-shot classification of the unseen digits 5-9 (10 train + 10 val
# images per class, the other ~800 images as test; data from
# mmseg_davpt.digits.cls_data.make_digits_cls_data) with the digits ViT
# pretrained on digits 0-4 (tools/pretrain_digits_vit.py, converted by
# tools/convert_vit_checkpoint.py): the VTAB-1k / FGVC setting of the paper
# in miniature, on the project's ViT-B/16 classification bases.
# This file is VPT-Deep: 3 prompts in each of the 4 layers, frozen ViT,
# linear head. See docs/digits_transfer_cls.md.
_base_ = [
    '../../../cls/_base_/variants/vpt_vit-b16.py',
    '../../../cls/_base_/datasets/vtab1k.py'
]
data_root = 'data/digits/cls/seed0'
num_classes = 5
img_size = 32

model = dict(
    # The upstream pixel statistics (mmseg_davpt.digits.DIGITS_MEAN /
    # DIGITS_STD), with which the ViT was pretrained.
    data_preprocessor=dict(mean=[77.76, 77.76, 77.76],
                           std=[83.29, 83.29, 83.29], to_rgb=True),
    backbone=dict(
        img_size=img_size, patch_size=4, embed_dims=64, num_layers=4,
        num_heads=4, num_prompts=3, prompt_dropout=0.,
        init_cfg=dict(checkpoint='data/digits/vit-digits_mmseg.pth')),
    head=dict(num_classes=num_classes, in_channels=64))

# The images are written at 32x32 (8-bit grey PNG, read as 3 channels): no
# resize, no augmentation.
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
dataset = dict(data_root=data_root, num_classes=num_classes,
               classes=('5', '6', '7', '8', '9'), pipeline=pipeline)
# Grid runs: train on train800 (10 per class), score val200 (10 per class).
# The final run (sweep.final_options) trains on train800val200 and is
# scored once on test.
train_dataloader = dict(batch_size=10, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(dataset, split='train800'))
val_dataloader = dict(batch_size=200, num_workers=0,
                      persistent_workers=False,
                      dataset=dict(dataset, split='val200'))
test_dataloader = dict(val_dataloader, dataset=dict(dataset, split='test'))

# 10 epochs of 5 iterations (10 with train800val200): 1 warm-up epoch,
# cosine to 0; validate once, at the end.
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0.,
         by_epoch=True, begin=1, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-2, weight_decay=1e-4))
# Many short runs: no checkpoints, no per-epoch test scoring (the test split
# is scored once, by the final run).
default_hooks = dict(
    _delete_=True,
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=None,
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)

# The per-seed protocol of tools/sweep.py: grid on train800 -> val200, the
# chosen point retrained on train800val200 and scored on test. Every method
# has 4 grid points; the variants replace `grid`.
sweep = dict(
    metric='accuracy/top1',
    grid={
        'optim_wrapper.optimizer.lr': [3e-3, 1e-2],
        'optim_wrapper.optimizer.weight_decay': [1e-4, 1e-2],
    },
    seed_options={
        'train_dataloader.dataset.data_root': 'data/digits/cls/seed{seed}',
        'val_dataloader.dataset.data_root': 'data/digits/cls/seed{seed}',
        'test_dataloader.dataset.data_root': 'data/digits/cls/seed{seed}',
        'randomness.seed': '{seed}',
    },
    final_options={'train_dataloader.dataset.split': 'train800val200'},
)
