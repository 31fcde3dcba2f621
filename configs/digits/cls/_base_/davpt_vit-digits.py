# DA-VPT on the digits task: the VPT-Deep base plus the classification
# metric guidance (L_p and L_cls, Proxy-Anchor, query features) in the last
# layer (paper Sec. 5.3), with 3 guided prompts for the 5 classes so that
# k-means groups classes onto prompts (paper Sec. 3.4), refreshed after
# every epoch by ClassPromptMappingHook.
_base_ = ['./vpt_vit-digits.py',
          '../../../cls/_base_/davpt/cls_metric_guidance.py']
model = dict(
    backbone=dict(guided_layers=(3, ), num_guided_prompts=3),
    metric_guidance=dict(
        _base_.davpt_cls_guidance,
        # beta (searched) and lambda (fixed)
        loss_prompt=dict(_base_.davpt_cls_guidance.loss_prompt,
                         loss_weight=0.1),
        loss_cls=dict(_base_.davpt_cls_guidance.loss_cls, loss_weight=0.1)))
custom_hooks = [_base_.davpt_cls_mapping_hook]
# 4 grid points, as every method: beta is searched in place of the weight
# decay (fixed at the smaller VPT value); lambda is held at 0.1.
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
sweep = dict(grid=dict(
    _delete_=True, **{
        'optim_wrapper.optimizer.lr': [3e-3, 1e-2],
        'model.metric_guidance.loss_prompt.loss_weight': [0.1, 0.5],
    }))
