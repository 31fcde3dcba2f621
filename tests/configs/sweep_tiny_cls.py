# Tiny VPT classifier for the sweep tool's tests: a random 2-layer prompted
# ViT on 16x16 generated images (mmseg_davpt.datasets.generate_cls_folders,
# VTAB-1k layout), one epoch of 2 iterations; well under a second a run.
_base_ = ['../../configs/cls/_base_/variants/vpt_vit-b16.py',
          '../../configs/cls/_base_/datasets/vtab1k.py']
data_root = 'data/sweep_tiny'  # the tests point it at generated data
num_classes = 2
model = dict(
    data_preprocessor=dict(mean=[128.] * 3, std=[64.] * 3),
    backbone=dict(img_size=16, patch_size=8, embed_dims=32, num_layers=2,
                  num_heads=2, num_prompts=2, prompt_dropout=0.,
                  freeze_pretrained=False, init_cfg=None),
    head=dict(num_classes=num_classes, in_channels=32))
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
dataset = dict(data_root=data_root, num_classes=num_classes,
               pipeline=pipeline)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, split='train800'))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(dataset, split='val200'))
test_dataloader = dict(val_dataloader, dataset=dict(dataset, split='test'))
param_scheduler = []
train_cfg = dict(max_epochs=1, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=1e-2))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100))
sweep = dict(
    metric='accuracy/top1',
    grid={'optim_wrapper.optimizer.lr': [1e-2, 1e-1]},
    seed_options={'randomness.seed': '{seed}'},
    final_options={'train_dataloader.dataset.split': 'train800val200'},
    seeds=[0, 1])
