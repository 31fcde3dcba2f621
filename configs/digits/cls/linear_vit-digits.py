# Linear probe on digits 5-9: frozen pretrained digits ViT, no prompts, only
# the linear head on the final [CLS] feature trains. Grid (4 points): lr
# {1e-2, 3e-2} x weight decay {1e-4, 1e-2}.
_base_ = ['./_base_/vpt_vit-digits.py']
model = dict(backbone=dict(num_prompts=0))
optim_wrapper = dict(optimizer=dict(lr=1e-2))
sweep = dict(grid=dict(
    _delete_=True, **{
        'optim_wrapper.optimizer.lr': [1e-2, 3e-2],
        'optim_wrapper.optimizer.weight_decay': [1e-4, 1e-2],
    }))
