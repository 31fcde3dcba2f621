"""Deployment: ONNX export of single-scale inference, parity checks against
PyTorch, and ONNX Runtime segmentation with the config's pre- and
post-processing. Needs the ``deploy`` extra (onnx, onnxscript,
onnxruntime), imported on first use."""
from .graph import (ClsLogits, SegLogits, default_input_shape, is_segmentor,
                    logits_module)
from .onnx_export import (Parity, check_parity, export_onnx, ort_session,
                          require_onnx, sample_pixels)
from .onnx_runtime import OnnxSegmentor, slide_windows

__all__ = [
    'ClsLogits', 'OnnxSegmentor', 'Parity', 'SegLogits', 'check_parity',
    'default_input_shape', 'export_onnx', 'is_segmentor', 'logits_module',
    'ort_session', 'require_onnx', 'sample_pixels', 'slide_windows'
]
