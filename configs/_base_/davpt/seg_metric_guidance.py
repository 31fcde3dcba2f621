# DA-VPT metric guidance for segmentation with the paper's settings
# (docs/method.md sections 2-4, paper Sec. 3.2 and App. A.2). Top-level
# configs plug these in:
#   model = dict(type='DAVPTEncoderDecoder',
#                metric_guidance=_base_.davpt_metric_guidance)
#   custom_hooks = [dict(_base_.davpt_mapping_hook, interval=...)]
# (They are variables, not `model`, because mmengine refuses a key defined
# in two sibling _base_ files.)
davpt_metric_guidance = dict(
    type='SegMetricGuidance',
    # L_p (Eq. 4): Proxy-Anchor with delta 0.1, alpha 32; beta = 0.05
    loss_prompt=dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
                     loss_weight=0.05),
    # L_cls (Eq. 5): lambda = 0.05
    loss_cls=dict(type='ProxyAnchorLoss', margin=0.1, alpha=32.0,
                  loss_weight=0.05),
    feature='query',  # compare W_q p with W_q x (paper's better choice)
    pooling='class_masked',  # the target class's tokens (Eq. 4)
    # With reduce_zero_label=True (ADE20K, PASCAL Context) the background is
    # already the ignore index, so every class may be a target.
    background_classes=())
davpt_mapping_hook = dict(
    type='ClassPromptMappingHook',
    # refresh interval in iterations: set per dataset (about one epoch)
    interval=1000,
    # initial pass: one epoch across all ranks; a number caps batches/rank
    init_max_iters=None,
    # e.g. 'work_dirs/class_stats_ade20k.pth' to reuse the initial pass
    cache_file=None)
