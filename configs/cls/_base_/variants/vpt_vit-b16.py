# VPT-Deep baseline: 20 prompts in each of the 12 layers, frozen ViT-B/16,
# linear head; no metric guidance, no bias tuning.
_base_ = [
    '../models/prompted_vit-b16.py', '../schedules/adamw_100e.py',
    '../default_runtime.py'
]
