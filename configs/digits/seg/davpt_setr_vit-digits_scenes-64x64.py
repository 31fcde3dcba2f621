# Digit scenes, DA-VPT: the VPT baseline plus metric guidance (paper
# Sec. 3.2, Eqs. 4-5, its segmentation settings) in the last layer, which
# gets 4 guided prompts for the 5 digit classes (k-means groups two of
# them), and the class -> prompt mapping hook.
_base_ = [
    './vpt_setr_vit-digits_scenes-64x64.py',
    '../../_base_/davpt/seg_metric_guidance.py'
]
model = dict(
    backbone=dict(guided_layers=(3, ), num_guided_prompts=4),
    # background (label 0) is a trained class here, never a guidance target
    metric_guidance=dict(_base_.davpt_metric_guidance,
                         background_classes=(0, )))
# initial mapping from one pass over the training scenes, then a k-means
# refresh about once per epoch (200 scenes / 8 per batch)
custom_hooks = [dict(_base_.davpt_mapping_hook, interval=25)]
