# DA-VPT as the authors' released classification code runs it. The per-task
# values (lr, weight decay, prompts, guided layers, loss weights, tuned
# parameters...) come from configs/cls/recipes.csv through the generated
# configs in configs/cls/released/; this file holds what every recipe shares.
# Where the released code differs from the paper, the paper's reading is
# configs/cls/_base_/variants/davpt_vit-b16.py (table in configs/cls/README.md).
_base_ = ['./davpt_vit-b16.py']
model = dict(
    backbone=dict(
        # no prompt dropout; xavier prompt init (the recipes say whether it
        # is divided by 8)
        prompt_dropout=0.,
        prompt_init='xavier_div8'),
    metric_guidance=dict(
        # L_p: mean of each image's block-input patch tokens vs the raw
        # prompts; L_cls: the [CLS] query (W_q LN(x) + b_q) vs the raw prompts
        feature='raw',
        token_source='block_input',
        cls_source='attention_query',
        pooling='image_mean'))
optim_wrapper = dict(
    # fp16 recipes use AmpOptimWrapper, which needs CUDA; on a CPU pass
    # --cfg-options optim_wrapper.type=OptimWrapper
    type='OptimWrapper',
    # gradients clipped by value at 10, after unscaling
    clip_grad=dict(type='value', clip_value=10., _delete_=True),
    # biases and other 1-D tensors get no weight decay, the head's weight
    # its own (set per recipe), prompts and [CLS] the recipe's weight_decay
    paramwise_cfg=dict(flat_decay_mult=0.0))
# Note: drop_path_rate follows MMSegmentation's ViT (stochastic depth on the
# FFN branch only); the released code (timm) drops both residual branches.
