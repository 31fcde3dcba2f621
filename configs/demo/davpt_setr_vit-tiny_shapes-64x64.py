# Embedded demo, DA-VPT: the VPT demo plus metric guidance in the last layer
# (3 guided prompts for the 4 shape classes, so k-means groups two of them),
# and the class -> prompt mapping hook. The README's main job.
_base_ = './vpt_setr_vit-tiny_shapes-64x64.py'
model = dict(
    type='DAVPTEncoderDecoder',
    backbone=dict(guided_layers=(3, ), num_guided_prompts=3),
    metric_guidance=dict(
        type='SegMetricGuidance',
        prompt_loss_weight=0.05,  # beta (paper: 0.05)
        cls_loss_weight=0.05,  # lambda (paper: 0.05)
        feature='query',
        pooling='class_masked',
        # here class 0 is a real 'background' class, never a target
        background_classes=(0, )))
custom_hooks = [
    # initial mapping from one pass over the 200 training images, then a
    # k-means refresh every 50 iterations
    dict(type='ClassPromptMappingHook', interval=50)
]
