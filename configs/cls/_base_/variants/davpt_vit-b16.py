# DA-VPT: VPT-Deep plus metric guidance in the last layer (paper: the final
# layer is best in most cases, Sec. 5.3; Table 5 searches the last
# {0, 2, 4, ..., 12} layers). Tasks with fewer classes than guided prompts
# keep the extra prompts unassigned and unguided (paper App. A.3).
_base_ = ['./vpt_vit-b16.py', '../davpt/cls_metric_guidance.py']
model = dict(
    backbone=dict(guided_layers=(11, ), num_guided_prompts=20),
    metric_guidance=_base_.davpt_cls_guidance)
custom_hooks = [_base_.davpt_cls_mapping_hook]
