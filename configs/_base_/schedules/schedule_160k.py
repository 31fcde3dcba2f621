# SETR's ADE20K schedule (Zheng et al., CVPR 2021), which DA-VPT follows
# (paper App. A.2): SGD, poly decay, 160k iterations at 16 images per step.
# lr is a searched hyperparameter in the paper ({1e-3, 5e-4, 1e-4, 5e-5},
# Table 5); 1e-3 is SETR's value and the first point of that grid.
optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    # Hands the optimizer the trainable parameters only (prompts, tuned
    # biases, heads); mmengine's default would pass the frozen ViT too.
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=optimizer,
    clip_grad=None,
    # 'head' matches decode_head and auxiliary_head: SETR trains the freshly
    # initialised heads 10x faster than the backbone (here: the prompts).
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=160000,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # one checkpoint per validation; a full ViT-L checkpoint is ~1.3 GB.
    # AtomicCheckpointHook: saves survive interruption (atomic writes;
    # outdated checkpoints removed only after the new one is complete)
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=16000,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RNG states in checkpoints: --resume continues the same random draws
    rng_state=dict(type='RNGStateHook'),
    # warns when the first 20 iterations hold no labelled pixel at all
    labelled_pixels=dict(type='LabelledPixelsHook', check_iters=20),
    visualization=dict(type='SegVisualizationHook'))
