# DA-VPT+ (key/value bias tuning) with the released code's segmentation
# settings (davpt-released_setr_ade20k.py); the paper's reading is
# davpt_plus_setr_ade20k.py.
_base_ = './davpt-released_setr_ade20k.py'
model = dict(backbone=dict(tune_params='kv'))
