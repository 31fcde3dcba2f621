"""Export a trained segmentor / classifier to ONNX and check the file
against PyTorch with ONNX Runtime."""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .graph import default_input_shape, is_segmentor, logits_module

# ONNX metadata keys the runtime side reads back
META_KIND = 'mmseg_davpt.kind'
META_CLASSES = 'mmseg_davpt.classes'
META_PALETTE = 'mmseg_davpt.palette'
# protobuf's 2 GB limit: bigger graphs keep their weights in a side file
_SINGLE_FILE_BYTES = 1_800_000_000


def require_onnx():
    """Import ``onnx`` and ``onnxruntime`` or say how to install them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f'ONNX export needs onnx, onnxscript and onnxruntime ({e}); '
            "install them with: pip install -e '.[deploy]'") from e


def sample_pixels(shape: Tuple[int, int], batch: int = 2,
                  seed: int = 0) -> torch.Tensor:
    """Seeded ``(batch, 3, H, W)`` float pixels in [0, 255] with smooth
    structure (random colour blocks plus noise), so the logits are not all
    near a tie."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    blocks = torch.rand(batch, 3, 4, 4, generator=g) * 255
    img = torch.nn.functional.interpolate(blocks, size=(h, w),
                                          mode='nearest')
    noise = torch.rand(batch, 3, h, w, generator=g) * 40 - 20
    return (img + noise).clamp(0, 255)


def export_onnx(model: nn.Module, out: str,
                shape: Optional[Sequence[int]] = None,
                dynamic_batch: bool = False,
                opset: Optional[int] = None) -> Tuple[int, int]:
    """Write ``model``'s single-scale inference (``SegLogits`` /
    ``ClsLogits``: pixels ``(N, 3, H, W)`` -> logits) to ``out``.

    ``H, W`` are fixed at export (``shape``, default
    ``default_input_shape``): the position-embedding resize is resolved for
    that grid. ``dynamic_batch`` leaves ``N`` free. Class names and palette
    (``model.dataset_meta``) go into the file's metadata. Returns
    ``(H, W)``.
    """
    require_onnx()
    import onnx
    shape = tuple(int(s) for s in (shape or default_input_shape(model)))
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'shape must be two positive sizes (H, W), got '
                         f'{shape}')
    wrapper = logits_module(model)
    # a batch of 2: the exporter would specialise a sample batch of 1
    example = sample_pixels(shape, batch=2 if dynamic_batch else 1)
    kwargs = {}
    if dynamic_batch:
        kwargs['dynamic_shapes'] = {
            'pixels': {0: torch.export.Dim('batch', min=1, max=4096)}}
    n_bytes = sum(p.numel() * p.element_size()
                  for p in wrapper.parameters())
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, (example, ), dynamo=True, input_names=['pixels'],
            output_names=['logits'], opset_version=opset, verbose=False,
            external_data=n_bytes > _SINGLE_FILE_BYTES, **kwargs)
    proto = program.model_proto
    meta = getattr(model, 'dataset_meta', None) or {}
    props = {META_KIND: 'segmentor' if is_segmentor(model) else 'classifier'}
    if meta.get('classes') is not None:
        props[META_CLASSES] = json.dumps(list(meta['classes']))
    if meta.get('palette') is not None:
        props[META_PALETTE] = json.dumps(
            [[int(c) for c in p] for p in meta['palette']])
    onnx.helper.set_model_props(proto, props)
    if n_bytes > _SINGLE_FILE_BYTES:
        onnx.save_model(proto, out, save_as_external_data=True,
                        location=osp.basename(out) + '.data')
    else:
        onnx.save_model(proto, out)
    return shape


@dataclass
class Parity:
    """PyTorch vs ONNX Runtime on one sample batch."""
    max_abs_diff: float  # largest |logit difference|
    changed_share: float  # share of pixels (images) with another argmax
    num_predictions: int
    unit: str  # 'pixels' (segmentor) or 'images' (classifier)
    atol: float
    max_changed_share: float

    @property
    def ok(self) -> bool:
        return (self.max_abs_diff <= self.atol
                and self.changed_share <= self.max_changed_share)

    def __str__(self) -> str:
        verdict = 'OK' if self.ok else 'FAILED'
        return (f'parity {verdict}: max |logit diff| {self.max_abs_diff:.3g}'
                f' (tolerance {self.atol:g}); predicted class differs on '
                f'{self.changed_share:.4%} of {self.num_predictions} '
                f'{self.unit} '
                f'(tolerance {self.max_changed_share:.4%})')


def ort_session(path: str):
    """An ONNX Runtime CPU session for ``path`` (clear error if absent)."""
    require_onnx()
    import onnxruntime as ort
    if not osp.isfile(path):
        raise FileNotFoundError(f'no ONNX file at {path}')
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def check_parity(model: nn.Module, onnx_path: str,
                 shape: Sequence[int], batch: int = 1, seed: int = 0,
                 atol: float = 1e-3,
                 max_changed_share: float = 0.0) -> Parity:
    """Run ``model`` (PyTorch, eval) and the ONNX file on the same seeded
    ``sample_pixels`` batch and compare logits and argmax labels."""
    pixels = sample_pixels(tuple(shape), batch, seed)
    with torch.no_grad():
        ref = logits_module(model)(pixels).numpy()
    out = ort_session(onnx_path).run(None, {'pixels': pixels.numpy()})[0]
    if out.shape != ref.shape:
        raise ValueError(f'ONNX output shape {out.shape} differs from '
                         f'PyTorch {ref.shape}')
    changed = out.argmax(1) != ref.argmax(1)
    return Parity(max_abs_diff=float(np.abs(out - ref).max()),
                  changed_share=float(changed.mean()),
                  num_predictions=int(changed.size),
                  unit='images' if changed.ndim == 1 else 'pixels', atol=atol,
                  max_changed_share=max_changed_share)
