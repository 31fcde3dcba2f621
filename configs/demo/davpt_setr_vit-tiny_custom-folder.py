# Your own dataset, on the DA-VPT demo model (docs/custom_dataset.md):
# images/{train,val}/*.jpg + masks/{train,val}/*.png (palette PNGs, 0 =
# unlabelled), four classes. Any config of ours can be the base; only the
# dataset, the class count and the guidance's background change.
_base_ = ['./davpt_setr_vit-tiny_shapes-64x64.py']
data_root = 'data/my_shapes'
classes = ('disc', 'square', 'triangle', 'ring')
num_classes = len(classes)
dataset = dict(type='BaseSegDataset', data_root=data_root,
               metainfo=dict(classes=classes), img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)


def with_classes(pipeline):
    return [dict(t, num_classes=num_classes)
            if t['type'] == 'CheckSegAnnotation' else t for t in pipeline]


def split(name, pipeline):
    return dict(dataset, pipeline=with_classes(pipeline), data_prefix=dict(
        img_path=f'images/{name}', seg_map_path=f'masks/{name}'))


train_dataloader = dict(dataset=split('train', _base_.train_pipeline))
val_dataloader = dict(dataset=split('val', _base_.test_pipeline))
test_dataloader = val_dataloader
model = dict(
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=[dict(h, num_classes=num_classes)
                    for h in _base_.model.auxiliary_head],
    # no background class left (0 is the ignore index now): every class
    # may be a guidance target; 3 guided prompts for 4 classes
    backbone=dict(num_guided_prompts=3),
    metric_guidance=dict(background_classes=()))
