# DA-VPT on SETR-PUP / ViT-L/16, ADE20K 512x512, with the settings of the
# authors' released segmentation code; 8 GPUs x 2 images/GPU, 160k
# iterations. The paper's reading is davpt_setr_ade20k.py; the differences
# are listed in docs/paper_vs_released.md.
_base_ = './davpt_setr_ade20k.py'
model = dict(
    backbone=dict(
        # guidance on layer 11 (0-based, the 12th of 24) with 10 prompts;
        # the other 23 layers keep 20
        guided_layers=(11, ),
        num_guided_prompts=10,
        # xavier prompt init divided by 8
        prompt_init='xavier_div8'),
    metric_guidance=dict(
        # L_p: each image's mean block-input patch token vs the raw prompts;
        # L_cls: the [CLS] query vs the raw prompts
        feature='raw',
        token_source='block_input',
        cls_source='attention_query',
        pooling='image_mean',
        # every cosine scaled by 5 before alpha and margin apply
        loss_prompt=dict(similarity_scale=5.0),
        loss_cls=dict(similarity_scale=5.0)))
# The released code labels each image with a scene class from an annotation
# file it does not ship; here each image's target is one class drawn from its
# label map (paper App. A.2). Its initial mapping reads at most 200 batches
# of 32 images: 400 batches of 2 per rank on 8 GPUs.
custom_hooks = [dict(_base_.custom_hooks[0], init_max_iters=400)]
