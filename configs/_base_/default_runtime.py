# Runtime shared by every config: environment, logging, visualisation.
# The runner hooks (``default_hooks``) live in ``schedules/`` beside the loop
# they serve: the checkpoint interval depends on the schedule, and mmengine
# refuses a key defined in two sibling ``_base_`` files, so it cannot be
# declared here and overridden there.
default_scope = 'mmseg'
# Importing the package registers PromptedVisionTransformer (and later the
# DA-VPT losses and hooks) in MMSegmentation's registries.
custom_imports = dict(imports=['mmseg_davpt'], allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
# Iteration-based schedules: log and average by iteration, not epoch.
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

# Used by ``tools/test.py --tta`` (multi-scale + flip, the papers' "MS").
tta_model = dict(type='SegTTAModel')
