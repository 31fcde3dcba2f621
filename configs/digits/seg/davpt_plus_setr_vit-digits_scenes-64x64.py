# Digit scenes, DA-VPT+: DA-VPT plus tuning the Key and Value biases of
# every attention layer (the paper's "efficient bias" variant).
_base_ = './davpt_setr_vit-digits_scenes-64x64.py'
model = dict(backbone=dict(tune_params='kv'))
