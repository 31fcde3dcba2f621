"""Tiny model configs shared by tests (built through the registry, as a
config file would)."""
import copy

from mmengine.config import ConfigDict

NUM_CLASSES = 5

BACKBONE = dict(
    type='PromptedVisionTransformer', img_size=32, patch_size=8,
    embed_dims=64, num_layers=3, num_heads=4, out_indices=(0, 1, 2),
    patch_bias=True, num_prompts=4, guided_layers=(-1, ),
    num_guided_prompts=3)


def head(in_index, num_convs=1, loss_weight=1.0):
    return dict(
        type='SETRUPHead', in_channels=64, channels=16, in_index=in_index,
        num_classes=NUM_CLASSES, num_convs=num_convs, up_scale=2,
        kernel_size=3, norm_cfg=dict(type='BN'), align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=loss_weight))


def segmentor(metric_guidance=True, **backbone):
    cfg = dict(
        type='DAVPTEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0., 0., 0.],
                               std=[1., 1., 1.], size=(32, 32), pad_val=0,
                               seg_pad_val=255),
        backbone={**copy.deepcopy(BACKBONE), **backbone},
        decode_head=head(2, num_convs=3),
        auxiliary_head=[head(0, loss_weight=0.4), head(1, loss_weight=0.4)],
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    if metric_guidance:
        cfg['metric_guidance'] = dict(type='SegMetricGuidance',
                                      background_classes=(0, ))
    # ConfigDict as from a config file (mmseg reads test_cfg.mode).
    return ConfigDict(cfg)
