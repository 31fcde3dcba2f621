# Runtime shared by the classification configs (mmpretrain). The runner hooks
# (``default_hooks``) live in ``schedules/`` beside the loop they serve.
default_scope = 'mmpretrain'
# Registers PromptedVisionTransformer, DAVPTImageClassifier, the datasets
# (FGVC, VTAB1k) and the DA-VPT hooks in mmpretrain's registries.
custom_imports = dict(imports=['mmseg_davpt'], allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
