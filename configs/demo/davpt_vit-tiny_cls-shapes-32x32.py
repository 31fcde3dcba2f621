# Embedded classification demo, DA-VPT: the ViT-B/16 VTAB-1k DA-VPT recipe
# (configs/cls/_base_) shrunk to a tiny prompted ViT (4 layers, 96 dims,
# 8x8 patches) on a generated 6-class "shapes" dataset in the VTAB-1k
# file-list layout (tools/make_cls_demo_dataset.py). A minute on 2 CPU cores.
# The "pretrained" ViT is the seeded random timm-layout checkpoint of
# tools/make_demo_vit.py, loaded (and converted on the fly) by the backbone.
_base_ = [
    '../cls/_base_/variants/davpt_vit-b16.py',
    '../cls/_base_/datasets/vtab1k.py'
]
data_root = 'data/demo_cls'
num_classes = 6
img_size = 32

model = dict(
    backbone=dict(
        img_size=img_size, patch_size=8, embed_dims=96, num_layers=4,
        num_heads=4, num_prompts=4,
        # guidance in the last layer; 4 guided prompts for 6 classes, so
        # k-means groups classes onto prompts
        guided_layers=(3, ), num_guided_prompts=4,
        init_cfg=dict(checkpoint='data/demo_vit/vit-tiny_timm.pth')),
    head=dict(num_classes=num_classes, in_channels=96))

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic'),
    dict(type='PackInputs'),
]
dataset = dict(data_root=data_root, num_classes=num_classes,
               pipeline=pipeline)
# VTAB-1k's final protocol: train on train800val200, validate on test. The
# report hook (ClsReportHook, from the base schedule) then writes
# work_dir/davpt_report.json with (a) the final-epoch and (c) the
# best-test-epoch accuracy, and says why (b), the epoch chosen on a held-out
# val split, is not available. For all three numbers use the base's splits:
#   --cfg-options train_dataloader.dataset.split=train800 \
#                 val_dataloader.dataset.split=val200
train_dataloader = dict(batch_size=16, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(dataset, split='train800val200'))
val_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False,
                      dataset=dict(dataset, split='test'))
test_dataloader = val_dataloader

# 12 epochs: 2 warm-up, cosine to 1e-8; validate every 4 epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=10, eta_min=1e-8, by_epoch=True,
         begin=2, end=12, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=12, val_interval=4)
optim_wrapper = dict(optimizer=dict(lr=5e-3))
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=4, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
