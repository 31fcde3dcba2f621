# DINOv2 ViT-L/14 (Oquab et al., 2023) as a frozen, prompted backbone. A
# variable, not `model`: the SETR-PUP and UPerNet model bases merge it into
# their backbone (mmengine refuses a key defined in two sibling _base_ files).
dinov2_l14_backbone = dict(
    type='PromptedVisionTransformer',
    # DINOv2's pretraining grid: 518 px / 14 = 37x37 patches. A 512 px crop
    # is padded to the same 37x37 grid (patch_pad='corner'), so pos_embed is
    # used without interpolation.
    img_size=(518, 518),
    patch_size=14,
    in_channels=3,
    embed_dims=1024,
    num_layers=24,
    num_heads=16,
    # ViT-L/14 uses a plain 2-layer GELU MLP (4096 hidden); only ViT-g
    # uses SwiGLU, which this backbone does not build.
    mlp_ratio=4,
    qkv_bias=True,
    drop_rate=0.,
    norm_cfg=dict(type='LN', eps=1e-6),
    with_cls_token=True,
    patch_bias=True,
    # LayerScale on both residual branches (trained values come from the
    # checkpoint; 1e-5 is DINOv2's init).
    layer_scale_init_value=1e-5,
    # 0 for dinov2_vitl14_pretrain.pth; 4 for the "with registers" release
    # (dinov2_vitl14_reg4_pretrain.pth). Registers sit between [CLS] and
    # the prompts and are never read as patches.
    num_register_tokens=0,
    # The heads normalise what they read (SETR's LN, UPerNet's BN), as in
    # the ViT-L/16 configs; the checkpoint's final norm is unused.
    final_norm=False,
    interpolate_mode='bicubic',
    # VPT-Deep: 20 prompts in each of the 24 layers, as the ViT-L/16 configs.
    num_prompts=20,
    prompt_depth='deep',
    freeze_pretrained=True,
    # The DINOv2 authors' file in MMSegmentation's key layout, made with
    #   python tools/convert_vit_checkpoint.py dinov2_vitl14_pretrain.pth \
    #       checkpoints/dinov2-l14_mmseg.pth
    # (the raw file also loads directly: its layout is auto-detected).
    init_cfg=dict(
        type='Pretrained', checkpoint='checkpoints/dinov2-l14_mmseg.pth'))
