#!/usr/bin/env bash
# Create the project's virtual environment and install the tested stack:
# torch/torchvision, the OneDL OpenMMLab packages, then mmseg_davpt (editable)
# with its test and deploy (ONNX) extras. Idempotent. VENV=path to use
# another location.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON_BIN:-$(command -v python3.11 || command -v python3)}

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
echo "== torch + torchvision (requirements/torch.txt)"
"${PIP[@]}" -r requirements/torch.txt
echo "== OpenMMLab stack, OneDL distribution (requirements/mminstall.txt)"
"${PIP[@]}" -r requirements/mminstall.txt
echo "== mmseg_davpt (editable) + test and deploy (ONNX) requirements"
"${PIP[@]}" -e ".[tests,deploy]"
"$VENV/bin/python" - <<'PY'
import warnings
warnings.filterwarnings('ignore')
import torch, mmengine, mmcv, mmseg, mmseg_davpt, onnxruntime
print(f'ok: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmseg {mmseg.__version__}, '
      f'mmseg_davpt {mmseg_davpt.__version__}')
PY
