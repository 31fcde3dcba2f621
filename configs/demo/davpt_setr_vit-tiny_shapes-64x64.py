# Embedded demo, DA-VPT: the VPT demo plus metric guidance in the last layer
# (3 guided prompts for the 4 shape classes, so k-means groups two of them),
# and the class -> prompt mapping hook. The README's main job.
_base_ = [
    './vpt_setr_vit-tiny_shapes-64x64.py',
    '../_base_/davpt/seg_metric_guidance.py'
]
model = dict(
    backbone=dict(guided_layers=(3, ), num_guided_prompts=3),
    # the paper's settings, except that class 0 here is a real 'background'
    # class (not reduced to the ignore index) and is never a target
    metric_guidance=dict(_base_.davpt_metric_guidance,
                         background_classes=(0, )))
# initial mapping from one pass over the 200 training images, then a k-means
# refresh every 50 iterations
custom_hooks = [dict(_base_.davpt_mapping_hook, interval=50)]
