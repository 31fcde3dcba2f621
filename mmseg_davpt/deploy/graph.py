"""The module that gets exported: a trained model's single-scale inference
from a pixel batch to logits, preprocessing included."""
from typing import Tuple

import torch
import torch.nn as nn

from ..utils.model import unwrap_model


def is_segmentor(model: nn.Module) -> bool:
    return hasattr(unwrap_model(model), 'decode_head')


class Normalize(nn.Module):
    """The data preprocessor's per-image arithmetic: optional BGR -> RGB,
    then ``(x - mean) / std``, on a ``(N, 3, H, W)`` float batch."""

    def __init__(self, data_preprocessor: nn.Module):
        super().__init__()
        self.normalize = bool(data_preprocessor._enable_normalize)
        # mmseg's SegDataPreProcessor / mmpretrain's ClsDataPreprocessor
        self.flip = bool(getattr(data_preprocessor, '_channel_conversion',
                                 getattr(data_preprocessor, 'to_rgb',
                                         False)))
        if self.normalize:
            self.register_buffer('mean', data_preprocessor.mean.detach()
                                 .reshape(1, -1, 1, 1).float().clone())
            self.register_buffer('std', data_preprocessor.std.detach()
                                 .reshape(1, -1, 1, 1).float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(1)
        if self.normalize:
            x = (x - self.mean) / self.std
        return x


class SegLogits(nn.Module):
    """``(N, 3, H, W)`` BGR pixels (0-255, float, after the test pipeline's
    resize) -> ``(N, num_classes, H, W)`` logits: normalisation and the
    segmentor's ``encode_decode`` (backbone, decode head, bilinear resize to
    the input size). This is ``EncoderDecoder.whole_inference`` before the
    resize to the original image; in slide mode it is one window."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = unwrap_model(segmentor)
        self.normalize = Normalize(self.segmentor.data_preprocessor)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.normalize(pixels)
        # the decode head reads the output size from the first image's meta
        # only; one entry keeps the batch size symbolic in the export
        meta = [dict(img_shape=tuple(x.shape[2:]))]
        return self.segmentor.encode_decode(x, meta)


class ClsLogits(nn.Module):
    """``(N, 3, H, W)`` pixels (0-255, float, after the test pipeline) ->
    ``(N, num_classes)`` logits of an mmpretrain classifier (softmax and
    argmax stay outside, as in ``ClsHead.predict``)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = unwrap_model(classifier)
        self.normalize = Normalize(self.classifier.data_preprocessor)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.normalize(pixels)
        return self.classifier(x, mode='tensor')


def logits_module(model: nn.Module) -> nn.Module:
    """``SegLogits`` or ``ClsLogits`` around a built model, in eval mode."""
    wrapper = SegLogits(model) if is_segmentor(model) else ClsLogits(model)
    return wrapper.eval()


def default_input_shape(model: nn.Module) -> Tuple[int, int]:
    """``(H, W)`` the graph is exported and checked at: the slide window for
    slide-mode segmentors, else the data preprocessor's fixed ``size``, else
    the backbone's ``img_size``."""
    model = unwrap_model(model)
    test_cfg = getattr(model, 'test_cfg', None) or {}
    if test_cfg.get('mode') == 'slide':
        return tuple(test_cfg['crop_size'])
    size = getattr(model.data_preprocessor, 'size', None)
    if size:
        return tuple(size)
    img_size = getattr(model.backbone, 'img_size', None)
    if isinstance(img_size, int):
        return img_size, img_size
    return tuple(img_size)
