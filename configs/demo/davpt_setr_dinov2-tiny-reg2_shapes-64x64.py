# Embedded demo, DA-VPT on a tiny DINOv2-shaped ViT: the DA-VPT demo with
# patch 14 (a 64 px image pads to 5x5 patches, 70 px), LayerScale on both
# residual branches and 2 register tokens ([cls, registers, prompts,
# patches]). The "pretrained" ViT is a seeded random checkpoint in the DINOv2
# authors' layout, loaded as is (auto-detected):
#   python tools/make_demo_vit.py --dinov2-registers 2 \
#       --out data/demo_vit/dinov2-tiny-reg2.pth
_base_ = ['./davpt_setr_vit-tiny_shapes-64x64.py']
model = dict(
    backbone=dict(
        img_size=(70, 70), patch_size=14, interpolate_mode='bicubic',
        layer_scale_init_value=1e-5, num_register_tokens=2,
        init_cfg=dict(checkpoint='data/demo_vit/dinov2-tiny-reg2.pth')))
