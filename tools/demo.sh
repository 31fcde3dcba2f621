#!/usr/bin/env bash
# The embedded demo: generate data and a stand-in "pretrained" ViT, convert
# it, train DA-VPT for 300 iterations on CPU, then evaluate single-scale and
# with multi-scale + flip TTA. Uses the virtual environment of tools/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-${VENV:-.venv}/bin/python}
CONFIG=${CONFIG:-configs/demo/davpt_setr_vit-tiny_shapes-64x64.py}
WORK_DIR=${WORK_DIR:-work_dirs/demo_davpt}

echo "== 1/4 demo data and weights"
"$PY" tools/make_demo_dataset.py --root data/demo_shapes
"$PY" tools/make_demo_vit.py --out data/demo_vit/vit-tiny_timm.pth
"$PY" tools/convert_vit_checkpoint.py data/demo_vit/vit-tiny_timm.pth \
    data/demo_vit/vit-tiny_mmseg.pth
echo "== 2/4 train ($CONFIG)"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
echo "== 3/4 test, single scale ($CKPT)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test_ss"
echo "== 4/4 test, multi-scale + flip (--tta)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test_ms" --tta
echo "Done. Logs and checkpoints: $WORK_DIR"
