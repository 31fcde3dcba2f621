# Ablation (paper Table 3): DA-VPT with the prompt loss L_p only, no L_cls.
# Grid (4 points): lr {3e-3, 1e-2} x beta {0.1, 0.5}; weight decay 1e-4.
_base_ = ['./_base_/davpt_vit-digits.py']
model = dict(metric_guidance=dict(loss_cls=None))
