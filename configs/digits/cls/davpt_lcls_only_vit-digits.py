# Ablation (paper Table 3): DA-VPT with the [CLS] loss L_cls only, no L_p.
# Grid (4 points): lr {3e-3, 1e-2} x lambda {0.1, 0.5}; weight decay 1e-4.
_base_ = ['./_base_/davpt_vit-digits.py']
model = dict(metric_guidance=dict(loss_prompt=None))
sweep = dict(grid=dict(
    _delete_=True, **{
        'optim_wrapper.optimizer.lr': [3e-3, 1e-2],
        'model.metric_guidance.loss_cls.loss_weight': [0.1, 0.5],
    }))
