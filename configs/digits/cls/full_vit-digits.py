# Full fine-tuning on digits 5-9: no prompts, every weight of the pretrained
# digits ViT trains with the head (as the full_setr_* configs express it).
# Grid (4 points): lr {3e-4, 1e-3} x weight decay {1e-4, 1e-2}.
_base_ = ['./_base_/vpt_vit-digits.py']
model = dict(backbone=dict(num_prompts=0, freeze_pretrained=False))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
sweep = dict(grid=dict(
    _delete_=True, **{
        'optim_wrapper.optimizer.lr': [3e-4, 1e-3],
        'optim_wrapper.optimizer.weight_decay': [1e-4, 1e-2],
    }))
