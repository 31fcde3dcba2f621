# DA-VPT+ on digits 5-9: DA-VPT plus the key and value biases of every
# attention layer trained (paper Sec. 3.5). Grid as DA-VPT (4 points): lr
# {3e-3, 1e-2} x beta {0.1, 0.5}; lambda 0.1, weight decay 1e-4.
_base_ = ['./_base_/davpt_vit-digits.py']
model = dict(backbone=dict(tune_params='kv'))
