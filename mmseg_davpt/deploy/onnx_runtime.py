"""Segmentation with an exported ONNX file in ONNX Runtime, with the
config's test pipeline before it and mmseg's slide / resize / argmax after
it, so a user's image gets what ``mmseg.apis.inference_model`` gives."""
import copy
import json
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.config import load_config
from .onnx_export import META_CLASSES, META_PALETTE, ort_session


def slide_windows(height: int, width: int, crop, stride):
    """``(y1, y2, x1, x2)`` of the windows ``EncoderDecoder.slide_inference``
    runs on an ``H x W`` image (last row / column aligned to the border)."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    rows = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    cols = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    for r in range(rows):
        for c in range(cols):
            y2 = min(r * h_stride + h_crop, height)
            x2 = min(c * w_stride + w_crop, width)
            yield max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2


class OnnxSegmentor:
    """An exported segmentor (``tools/export_onnx.py``) run by ONNX Runtime.

    Args:
        config: the config the model was trained with (its
            ``test_pipeline``, ``model.test_cfg`` and the decode head's
            ``align_corners`` are used; the weights are in the file).
        onnx_file: the exported graph.
        cfg_options: config overrides, as ``--cfg-options``.

    ``dataset_meta`` holds the class names and palette stored at export
    (else the config's test dataset's), so mmseg's ``show_result_pyplot``
    can draw a result of ``segment``.
    """

    def __init__(self, config, onnx_file: str,
                 cfg_options: Optional[dict] = None):
        self.cfg = load_config(config, cfg_options)
        self.session = ort_session(onnx_file)
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.graph_hw = tuple(graph_input.shape[2:])
        test_cfg = self.cfg.model.get('test_cfg') or {}
        self.mode = test_cfg.get('mode', 'whole')
        if self.mode not in ('whole', 'slide'):
            raise ValueError(f'test_cfg.mode {self.mode!r}: only whole and '
                             'slide inference run on an ONNX graph')
        self.crop = tuple(test_cfg.get('crop_size') or self.graph_hw)
        self.stride = tuple(test_cfg.get('stride') or self.crop)
        if self.mode == 'slide' and self.crop != self.graph_hw:
            raise ValueError(
                f'{onnx_file} takes {self.graph_hw} inputs but the config '
                f'slides {self.crop} windows: export with --shape '
                f'{self.crop[0]} {self.crop[1]}')
        if (self.cfg.model.get('data_preprocessor') or {}).get('test_cfg'):
            raise ValueError('data_preprocessor.test_cfg (test-time padding) '
                             'is not reproduced by the ONNX backend')
        self.align_corners = bool(
            self.cfg.model.decode_head.get('align_corners', False))
        self.dataset_meta = self._dataset_meta()
        self._pipeline = self._test_pipeline()

    def _dataset_meta(self):
        from ..apis.inference import config_dataset_meta
        props = self.session.get_modelmeta().custom_metadata_map
        if META_CLASSES in props:
            classes = tuple(json.loads(props[META_CLASSES]))
            palette = (json.loads(props[META_PALETTE])
                       if META_PALETTE in props else None)
            if palette is None or len(palette) < len(classes):
                palette = (config_dataset_meta(self.cfg) or {}).get(
                    'palette')
            return dict(classes=classes, palette=palette)
        return config_dataset_meta(self.cfg)

    def _test_pipeline(self):
        # as mmseg.apis.inference_model: no annotations, image from memory
        from mmengine.dataset import Compose
        steps = [copy.deepcopy(t) for t in self.cfg.test_pipeline
                 if t.get('type') != 'LoadAnnotations']
        steps[0]['type'] = 'LoadImageFromNDArray'
        return Compose(steps)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` pipeline output -> ``(N, C, H, W)`` logits,
        whole image or averaged over slide windows."""
        if self.mode == 'whole':
            if tuple(pixels.shape[2:]) != self.graph_hw:
                raise ValueError(
                    f'the test pipeline gives a {tuple(pixels.shape[2:])} '
                    f'input but the graph takes {self.graph_hw}; export '
                    'with --shape matching the pipeline output')
            return self._run(pixels)
        h, w = pixels.shape[2:]
        if h < self.crop[0] or w < self.crop[1]:
            raise ValueError(f'{h}x{w} input is smaller than the '
                             f'{self.crop} slide window the graph takes')
        total = count = None
        for y1, y2, x1, x2 in slide_windows(h, w, self.crop, self.stride):
            out = self._run(pixels[:, :, y1:y2, x1:x2])
            if total is None:
                total = out.new_zeros(out.shape[:2] + (h, w))
                count = out.new_zeros((1, 1, h, w))
            total[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
        return total / count

    def _run(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.session.run(
            None, {self.input_name: pixels.float().contiguous().numpy()})
        return torch.from_numpy(out[0])

    def segment(self, img_bgr: np.ndarray):
        """``(H0, W0, 3)`` uint8 BGR image -> ``SegDataSample`` with
        ``seg_logits`` and ``pred_sem_seg`` at the original size, as
        ``inference_model`` returns."""
        from mmengine.structures import PixelData
        data = self._pipeline(dict(img=img_bgr))
        sample = data['data_samples']
        logits = self.logits(data['inputs'][None].float())
        logits = F.interpolate(logits, size=tuple(sample.ori_shape),
                               mode='bilinear',
                               align_corners=self.align_corners)[0]
        sample.seg_logits = PixelData(data=logits)
        sample.pred_sem_seg = PixelData(data=logits.argmax(0, keepdim=True))
        return sample
