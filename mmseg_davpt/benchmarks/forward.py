"""``forward``: the backbone alone, ours vs MMSegmentation's ViT, and the
cost of the prompt tokens.

Pairs (each timed forward-only and forward+backward, round-robin):

* ``PromptedVisionTransformer`` with 0 prompts vs mmseg ``VisionTransformer``
  holding the same weights (state dict copied; the keys are identical);
* ViT-L width, the paper's segmentation layout (20 prompts per layer, 10
  guided prompts in the last layer) vs 0 prompts;
* ViT-B, the paper's classification layout (20 prompts per layer) vs 0.

With ``--dinov2`` the ViT-L model is DINOv2-L/14 instead (patch 14, so a
512 px input pads to 37x37 = 1369 patches, LayerScale, ``--registers``
register tokens); MMSegmentation's ViT has neither, so the first pair is
left out.

Every model here trains all of its weights in the forward+backward case
(``freeze_pretrained=False``): each pair then does the same work apart
from what is compared (attention kernel, or extra tokens).
"""
from typing import Dict, Tuple

import torch

from .common import Report, median, paired_ratio, round_robin

VIT_L = dict(embed_dims=1024, num_heads=16)
VIT_B = dict(embed_dims=768, num_heads=12)


def vit_kwargs(embed_dims: int, num_heads: int, num_layers: int,
               img_size: int, patch_size: int = 16) -> dict:
    """Arguments shared by mmseg's ViT and ours (SETR's ViT-L/16 options)."""
    return dict(img_size=img_size, patch_size=patch_size,
                embed_dims=embed_dims,
                num_layers=num_layers, num_heads=num_heads, mlp_ratio=4,
                out_indices=(num_layers - 1, ), qkv_bias=True,
                drop_rate=0., norm_cfg=dict(type='LN', eps=1e-6),
                with_cls_token=True, patch_bias=True, final_norm=False,
                interpolate_mode='bilinear')


def build_reference(kwargs: dict, seed: int = 0):
    """mmseg ``VisionTransformer`` with its random init (and non-zero biases,
    so every weight matters when outputs are compared)."""
    from mmseg.models.backbones import VisionTransformer
    torch.manual_seed(seed)
    ref = VisionTransformer(**kwargs)
    ref.init_weights()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return ref


def build_prompted(kwargs: dict, state: Dict[str, torch.Tensor],
                   num_prompts: int = 0, num_guided_prompts=None,
                   guided_layers=(), seed: int = 0):
    """Our backbone, all weights trainable, ViT weights copied from
    ``state`` (prompts, if any, keep their VPT init); ``state=None`` keeps
    the random init, with non-zero biases and LayerScale."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='PromptedVisionTransformer', **kwargs, num_prompts=num_prompts,
        guided_layers=guided_layers, num_guided_prompts=num_guided_prompts,
        freeze_pretrained=False))
    if state is None:
        model.init_weights()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
        return model
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('prompts.')]
    if missing or unexpected:
        raise RuntimeError(f'state dict mismatch: missing {missing}, '
                           f'unexpected {unexpected}')
    return model


def token_ratio(num_patches: int, num_prompts: int,
                num_prefix: int = 1) -> float:
    """``(prefix + N_patches + N_prompts) / (prefix + N_patches)``: the
    extra tokens' share, the cost limit for the linear layers (attention:
    its square). ``prefix``: [CLS] plus any register tokens."""
    return (num_prefix + num_patches + num_prompts) / (num_prefix +
                                                       num_patches)


def layout_ratio(num_patches: int, counts,
                 num_prefix: int = 1) -> Tuple[float, float]:
    """Mean linear (token) and attention (token^2) ratio over layers with
    ``counts[i]`` prompts."""
    lin = [token_ratio(num_patches, n, num_prefix) for n in counts]
    return sum(lin) / len(lin), sum(r * r for r in lin) / len(lin)


def make_cases(models: Dict[str, torch.nn.Module], x: torch.Tensor):
    """Forward-only and forward+backward callables per model."""
    cases = {}
    for name, model in models.items():

        def fwd(model=model):
            model.eval()
            with torch.no_grad():
                model(x)

        def fwd_bwd(model=model):
            model.train()
            for p in model.parameters():
                p.grad = None
            outs = model(x)
            sum(o.float().mean() for o in outs).backward()

        cases[(name, 'fwd')] = fwd
        cases[(name, 'fwd+bwd')] = fwd_bwd
    return cases


def max_output_diff(a: torch.nn.Module, b: torch.nn.Module,
                    x: torch.Tensor) -> float:
    a.eval()
    b.eval()
    with torch.no_grad():
        return max(float((p - q).abs().max()) for p, q in zip(a(x), b(x)))


def build_models(args, device) -> Tuple[dict, dict]:
    """``(groups, info)``: ``groups`` maps a group title to its models (first
    one is the baseline), ``info`` holds inputs and token counts."""
    dinov2 = getattr(args, 'dinov2', False)
    patch = 14 if dinov2 else 16
    L = vit_kwargs(**VIT_L, num_layers=args.layers, img_size=args.img_size,
                   patch_size=patch)
    groups = {}
    if dinov2:
        L.update(layer_scale_init_value=1e-5,
                 num_register_tokens=args.registers,
                 interpolate_mode='bicubic')
        state = build_prompted(L, None).state_dict()
    else:
        ref = build_reference(L)
        state = ref.state_dict()
    ours0 = build_prompted(L, state)
    seg = build_prompted(L, state, num_prompts=args.prompts,
                         guided_layers=(-1, ),
                         num_guided_prompts=args.guided_prompts)
    if not dinov2:
        groups['mmseg ViT vs ours (0 prompts), ViT-L width'] = {
            'mmseg VisionTransformer': ref, 'PromptedViT, 0 prompts': ours0}
    arch = (f'DINOv2-L/14, {args.registers} registers' if dinov2 else
            'ViT-L width')
    groups[f'prompts, {arch} (segmentation layout)'] = {
        'PromptedViT, 0 prompts': ours0,
        f'PromptedViT, {args.prompts} prompts ({args.guided_prompts} '
        'guided, last layer)': seg}
    side = -(-args.img_size // patch)  # the input is padded to the grid
    info = dict(x_l=torch.randn(args.batch, 3, args.img_size, args.img_size,
                                generator=torch.Generator().manual_seed(0)),
                patches_l=side * side, prefix_l=ours0.num_prefix, arch=arch,
                counts_l=seg.prompt_counts)
    if args.vitb_img_size:
        B = vit_kwargs(**VIT_B, num_layers=args.layers,
                       img_size=args.vitb_img_size)
        refb = build_reference(B)
        b0 = build_prompted(B, refb.state_dict())
        bp = build_prompted(B, refb.state_dict(),
                            num_prompts=args.vitb_prompts)
        groups['prompts, ViT-B (classification layout)'] = {
            'ViT-B, 0 prompts': b0,
            f'ViT-B, {args.vitb_prompts} prompts': bp}
        info.update(x_b=torch.randn(
            args.batch, 3, args.vitb_img_size, args.vitb_img_size,
            generator=torch.Generator().manual_seed(1)),
                    patches_b=(args.vitb_img_size // 16)**2,
                    counts_b=bp.prompt_counts)
    for models in groups.values():
        for m in models.values():
            m.to(device)
    for k in ('x_l', 'x_b'):
        if k in info:
            info[k] = info[k].to(device)
    return groups, info


def run(args) -> Report:
    device = args.device
    report = Report('forward', vars(args), device)
    groups, info = build_models(args, device)
    pair = groups.get('mmseg ViT vs ours (0 prompts), ViT-L width')
    compared = 'no mmseg reference (it has no LayerScale / registers)'
    if pair:
        compared = ('ours vs mmseg outputs max |diff| = '
                    f'{max_output_diff(*pair.values(), info["x_l"]):.2e}')
    prefix = info['prefix_l']
    tokens = prefix + info['patches_l']
    report.note(
        f'{info["arch"]} ({VIT_L["embed_dims"]} dims, {VIT_L["num_heads"]} '
        f'heads), {args.layers} layers (per-layer cost is the same, so '
        f'ratios hold for 24), {args.img_size}x{args.img_size} = {tokens} '
        f'tokens ({prefix} before the patches), batch {args.batch}; '
        f'{compared}.')
    lin, att = layout_ratio(info['patches_l'], info['counts_l'], prefix)
    full = [args.prompts] * 23 + [args.guided_prompts]  # 24-layer ViT-L
    report.note(
        f'Limit for the prompts ({info["arch"]}, {args.img_size} px): '
        'extra tokens\' share (prefix + N_patches + N_prompts) / '
        '(prefix + N_patches) = '
        f'{token_ratio(info["patches_l"], args.prompts, prefix):.4f} at '
        f'{args.prompts} prompts, '
        f'{token_ratio(info["patches_l"], args.guided_prompts, prefix):.4f}'
        ' at '
        f'{args.guided_prompts}; mean over these {args.layers} layers '
        f'{lin:.4f} for linear layers, {att:.4f} for attention (quadratic '
        f'in tokens); 24-layer layout '
        f'{layout_ratio(info["patches_l"], full, prefix)[0]:.4f} linear.')
    if 'x_b' in info:
        lin_b, att_b = layout_ratio(info['patches_b'], info['counts_b'])
        report.note(
            f'Limit for the prompts (ViT-B, {args.vitb_img_size} px, '
            f'{1 + info["patches_b"]} tokens): {lin_b:.4f} linear, '
            f'{att_b:.4f} attention.')

    # One round-robin over every (model, mode), compared cases side by side
    # (grouped by mode); a model shared by two groups is timed once.
    unique, cases = {}, {}
    for title, models in groups.items():
        x = info['x_b'] if 'ViT-B' in title else info['x_l']
        for name, model in models.items():
            if name not in unique:
                unique[name] = (model, x)
    for mode in ('fwd', 'fwd+bwd'):
        for name, (model, x) in unique.items():
            cases[(name, mode)] = make_cases({name: model}, x)[(name, mode)]
    times = round_robin(cases, args.warmup, args.repeats, device)
    meds = {k: median(v) for k, v in times.items()}
    columns = ['model', 'mode', 'median s', 'min s', 'ratio of medians',
               'paired ratio', 'limit (linear)']
    for title, models in groups.items():
        names = list(models)
        limit = None
        if 'prompts,' in title:
            if 'ViT-B' in title:
                limit = layout_ratio(info['patches_b'], info['counts_b'])[0]
            else:
                limit = lin
        rows, records = [], []
        for mode in ('fwd', 'fwd+bwd'):
            base = (names[0], mode)
            for i, name in enumerate(names):
                key = (name, mode)
                med = meds[key]
                lim = limit if i and limit else None
                paired = paired_ratio(times[key], times[base])
                rows.append([name, mode, med, min(times[key]),
                             med / meds[base], paired, lim])
                records.append(dict(model=name, mode=mode, median_s=med,
                                    min_s=min(times[key]),
                                    ratio=med / meds[base],
                                    paired_ratio=paired, limit=lim,
                                    times_s=times[key]))
        report.add_table(f'{title}, median of {args.repeats}', columns, rows,
                         records)
    return report


def add_arguments(parser) -> None:
    parser.add_argument('--layers', type=int, default=2,
                        help='transformer layers (ViT-L has 24; per-layer '
                        'cost is identical, so ratios hold)')
    parser.add_argument('--img-size', type=int, default=512,
                        help='square input; 512 gives 1025 tokens')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--prompts', type=int, default=20,
                        help='prompts per layer, ViT-L segmentation layout')
    parser.add_argument('--guided-prompts', type=int, default=10,
                        help='prompts in the last (guided) layer')
    parser.add_argument('--vitb-img-size', type=int, default=224,
                        help='ViT-B classification input (0: skip ViT-B)')
    parser.add_argument('--vitb-prompts', type=int, default=20)
    parser.add_argument('--dinov2', action='store_true',
                        help='ViT-L as DINOv2-L/14: patch 14 (512 px: 37x37 '
                        'patches), LayerScale, --registers registers')
    parser.add_argument('--registers', type=int, default=4,
                        help='register tokens with --dinov2 (0: none)')
