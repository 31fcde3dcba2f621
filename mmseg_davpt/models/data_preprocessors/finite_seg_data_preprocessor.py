"""Refuse images with NaN or infinite pixels before they reach the model.

One such pixel makes every logit NaN (attention mixes all tokens), and
``argmax`` over NaN logits returns class 0 everywhere, silently: through
``inference_model``, ``MMSegInferencer`` / ``DAVPTInferencer``,
``tools/segment_image.py`` and ``tools/test.py`` alike. All of them pass
through the model's data preprocessor, so the check lives there.
"""
from typing import Any, Dict, Optional, Sequence, Union

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS


def check_finite_inputs(inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
                        data_samples: Optional[Sequence] = None) -> None:
    """Raise ``ValueError`` when an image holds NaN or infinite values.

    Args:
        inputs: images ``(C, H, W)`` each, or a batch ``(N, C, H, W)``.
            Integer images (uint8 files) cannot hold them and are skipped,
            so the usual case costs nothing.
        data_samples: the batch's samples; their ``img_path`` (when set)
            names the image in the error.
    """
    for i, img in enumerate(inputs):
        if not torch.is_floating_point(img) or torch.isfinite(img).all():
            continue
        num_nan = int(torch.isnan(img).sum())
        num_inf = int(torch.isinf(img).sum())
        path = None
        if data_samples is not None and i < len(data_samples):
            path = data_samples[i].metainfo.get('img_path')
        name = f'image {path}' if path else f'input image {i} of the batch'
        raise ValueError(
            f'{name} ({tuple(img.shape)}, {img.dtype}) has {num_nan} NaN '
            f'and {num_inf} infinite values: every logit would be NaN and the '
            f'prediction class 0 everywhere. Replace them before inference '
            f'(e.g. np.nan_to_num, or mask no-data pixels) or fix how the '
            f'image is read.')


@MODELS.register_module()
class FiniteSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that first refuses images with NaN or
    infinite pixels (``check_finite_inputs``), in training and inference.
    Same arguments and outputs."""

    # Not traced by torch.compile: its guards would hold each batch's data
    # samples (paths, flips) and recompile every iteration.
    @torch.compiler.disable
    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        check_finite_inputs(data['inputs'], data.get('data_samples'))
        return super().forward(data, training)
