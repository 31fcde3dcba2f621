# Ablation: DA-VPT with the initial k-means mapping (from the pretrained
# model, before training) kept for the whole run: no refresh. Grid as DA-VPT
# (4 points): lr {3e-3, 1e-2} x beta {0.1, 0.5}; lambda 0.1, wd 1e-4.
_base_ = ['./_base_/davpt_vit-digits.py']
custom_hooks = [dict(type='ClassPromptMappingHook', by_epoch=True, interval=1,
                     refresh=False)]
