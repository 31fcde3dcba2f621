# DA-VPT metric guidance for classification (docs/method.md sections 2-3 and
# 5). The variants plug these variables in (mmengine refuses a key defined in
# two sibling _base_ files, so they are not `model` / `custom_hooks` here).
davpt_cls_guidance = dict(
    type='ClsMetricGuidance',
    # beta and lambda: the paper gives 0.05 for segmentation and prints no
    # per-task classification values; the authors' released recipes have
    # them (configs/cls/released/). Proxy-Anchor delta 0.1, alpha 32.
    loss_prompt=dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
                     loss_weight=0.05),
    loss_cls=dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
                  loss_weight=0.05),
    feature='query',  # compare W_q p with W_q x (the paper's better choice)
    pooling='tokens')  # every patch token of an image is a sample (Eq. 4)
davpt_cls_mapping_hook = dict(
    type='ClassPromptMappingHook',
    # one pass with the pretrained model before training, then a k-means
    # refresh after every epoch (paper Sec. 3.4)
    by_epoch=True,
    interval=1,
    init_max_iters=None)
