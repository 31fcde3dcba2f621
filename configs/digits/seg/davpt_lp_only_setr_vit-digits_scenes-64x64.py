# Digit scenes, ablation: DA-VPT with L_p only (Eq. 4: the sampled class's
# patch tokens against the guided prompts); L_cls (Eq. 5: the [CLS] token
# against them) is left out.
_base_ = './davpt_setr_vit-digits_scenes-64x64.py'
model = dict(metric_guidance=dict(loss_cls=None))
