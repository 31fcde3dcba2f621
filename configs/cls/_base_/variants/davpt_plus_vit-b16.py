# DA-VPT+: DA-VPT plus tuning the key and value biases of every attention
# layer (the paper's "efficient bias", Sec. 3.5).
_base_ = ['./davpt_vit-b16.py']
model = dict(backbone=dict(tune_params='kv'))
