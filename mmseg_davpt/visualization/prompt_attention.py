"""Where prompts look: per-prompt attention over the patch grid (paper
Fig. 3).

In a guided layer each prompt stands for a group of classes (the class ->
prompt mapping), so its attention over the patch tokens should highlight the
regions of those classes. The maps are the softmax attention probabilities
of the layer, averaged over heads, read at the rows of the [CLS] token and of
the prompts and the columns of the patch tokens.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from ..utils.model import unwrap_model

UNASSIGNED_LABEL = 'unassigned'


def _backbone(model: nn.Module) -> nn.Module:
    model = unwrap_model(model)
    backbone = getattr(model, 'backbone', model)
    if not hasattr(backbone, 'forward_with_taps'):
        raise TypeError('prompt attention maps need a prompted backbone '
                        '(PromptedVisionTransformer), got '
                        f'{type(backbone).__name__}')
    return backbone


def default_layers(model: nn.Module) -> List[int]:
    """The backbone's guided layers, or its last layer when it has none."""
    backbone = _backbone(model)
    return list(backbone.guided_layers) or [backbone.num_layers - 1]


def check_layers(model: nn.Module, layers: Sequence[int]) -> List[int]:
    """Layer indices (negative allowed) as 0-based indices, or a
    ``ValueError`` naming the valid range."""
    num_layers = _backbone(model).num_layers
    out = []
    for layer in layers:
        index = layer + num_layers if layer < 0 else layer
        if not 0 <= index < num_layers:
            raise ValueError(
                f'layer {layer} is out of range: this ViT has {num_layers} '
                f'layers (0..{num_layers - 1}, or -{num_layers}..-1)')
        out.append(index)
    return out


@torch.no_grad()
def prepare_image(model: nn.Module, img_bgr) -> torch.Tensor:
    """``(H0, W0, 3)`` uint8 BGR image (``mmseg_davpt.apis.read_image``) ->
    ``(1, 3, H, W)`` model input: resized to the backbone's ``img_size``
    (the grid its position embedding was trained at) and normalised by the
    model's data preprocessor, as the test pipeline would."""
    import mmcv
    from mmseg.structures import SegDataSample
    model = unwrap_model(model)
    height, width = _backbone(model).img_size
    img = mmcv.imresize(img_bgr, (width, height), interpolation='bilinear')
    tensor = torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()
    # a data sample, because a preprocessor with test_cfg padding writes
    # the padding into it
    data = model.data_preprocessor(
        dict(inputs=[tensor], data_samples=[SegDataSample()]), False)
    return data['inputs']


@torch.no_grad()
def prompt_attention_maps(model: nn.Module,
                          inputs: torch.Tensor,
                          layers: Optional[Sequence[int]] = None
                          ) -> Dict[int, torch.Tensor]:
    """Head-averaged attention of [CLS] and each prompt over the patches.

    Runs the backbone once in eval mode; only the requested layers take the
    unfused path that forms the attention matrix.

    Args:
        model: a segmentor with a ``PromptedVisionTransformer`` backbone (or
            the backbone itself).
        inputs: one normalised image ``(1, C, H, W)`` or ``(C, H, W)``, as
            the data preprocessor outputs it.
        layers: layer indices (negative allowed); ``None`` means the guided
            layers, or the last layer without guidance.
    Returns:
        ``{layer: maps}`` with ``maps`` ``(num_prefix + num_prompts, h, w)``
        float on the CPU: row 0 is [CLS] (with ``with_cls_token``), then the
        layer's prompts in order; ``(h, w)`` is the patch grid. Each row is
        a probability row restricted to the patch keys, so it sums to at most
        one (the rest is attention to [CLS] and the prompts).
    """
    backbone = _backbone(model)
    if inputs.dim() == 3:
        inputs = inputs[None]
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError('prompt_attention_maps takes one image (1, C, H, W) '
                         f'or (C, H, W), got {tuple(inputs.shape)}')
    layers = check_layers(model, default_layers(model)
                          if layers is None else layers)
    was_training = backbone.training
    backbone.eval()  # no attention / prompt dropout in the maps
    try:
        _, taps = backbone.forward_with_taps(inputs, tap_layers=(),
                                             weight_layers=tuple(layers))
    finally:
        backbone.train(was_training)
    p = backbone.patch_size
    # PatchEmbed pads the input up to a multiple of the patch size
    grid = (math.ceil(inputs.shape[-2] / p), math.ceil(inputs.shape[-1] / p))
    maps = {}
    for layer in layers:
        tap = taps[layer]
        weights = tap.weights[0].float().mean(0)  # (T, T), rows: queries
        first_patch = tap.num_prefix + tap.num_prompt_tokens
        patches = weights[:first_patch, first_patch:]
        if patches.shape[1] != grid[0] * grid[1]:
            raise RuntimeError(f'{patches.shape[1]} patch tokens do not fill '
                               f'the {grid[0]}x{grid[1]} patch grid')
        maps[layer] = patches.reshape(first_patch, *grid).cpu()
    return maps


def prompt_class_names(model: nn.Module,
                       class_names: Optional[Sequence[str]] = None
                       ) -> List[List[str]]:
    """Class names mapped to each guided prompt, ``[[names of prompt 0],
    ...]`` (empty lists for unassigned prompts; all empty without metric
    guidance). ``class_names`` default to ``model.dataset_meta['classes']``,
    else ``'class <id>'``."""
    model = unwrap_model(model)
    guidance = getattr(model, 'metric_guidance', None)
    if guidance is None:
        return [[] for _ in range(_backbone(model).num_guided_prompts)]
    if class_names is None:
        class_names = (getattr(model, 'dataset_meta', None) or {}).get(
            'classes')
    return guidance.mapping.prompt_groups(class_names)


def token_labels(model: nn.Module, layer: int, num_rows: int,
                 class_names: Optional[Sequence[str]] = None) -> List[dict]:
    """What each row of ``prompt_attention_maps(...)[layer]`` is.

    Returns:
        One dict per row: ``token`` (``'[CLS]'`` or ``'prompt k'``),
        ``prompt`` (k or ``None``) and ``classes``: the mapped class names,
        ``['unassigned']`` for a guided prompt without classes, ``[]`` for
        [CLS] and for prompts of layers without guidance.
    """
    backbone = _backbone(model)
    layer = check_layers(model, [layer])[0]
    num_prefix = 1 if backbone.with_cls_token else 0
    guided = layer in backbone.guided_layers and \
        getattr(unwrap_model(model), 'metric_guidance', None) is not None
    per_prompt = prompt_class_names(model, class_names) if guided else None
    rows = []
    for row in range(num_rows):
        if row < num_prefix:
            rows.append(dict(token='[CLS]', prompt=None, classes=[]))
            continue
        k = row - num_prefix
        classes = []
        if per_prompt is not None:
            classes = per_prompt[k] if k < len(per_prompt) and per_prompt[k] \
                else [UNASSIGNED_LABEL]
        rows.append(dict(token=f'prompt {k}', prompt=k, classes=classes))
    return rows
