#!/usr/bin/env bash
# The embedded demo: generate data and a stand-in "pretrained" ViT, convert
# it, train DA-VPT segmentation for 300 iterations on CPU, then evaluate
# single-scale and with multi-scale + flip TTA; then DA-VPT classification
# (mmpretrain) on a generated VTAB-1k-format dataset. Uses the virtual
# environment of tools/install.sh. SKIP_CLS=1 runs the segmentation part only.
# Run again, it starts over: the generated data and weights are rewritten
# (--force; they are identical for the same seed) and the earlier demo runs'
# checkpoints in WORK_DIR / CLS_WORK_DIR are deleted (--overwrite-work-dir).
# Set WORK_DIR / CLS_WORK_DIR to keep an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-${VENV:-.venv}/bin/python}
CONFIG=${CONFIG:-configs/demo/davpt_setr_vit-tiny_shapes-64x64.py}
WORK_DIR=${WORK_DIR:-work_dirs/demo_davpt}

echo "== 1/5 demo data and weights"
"$PY" tools/make_demo_dataset.py --root data/demo_shapes
"$PY" tools/make_demo_vit.py --out data/demo_vit/vit-tiny_timm.pth --force
"$PY" tools/convert_vit_checkpoint.py data/demo_vit/vit-tiny_timm.pth \
    data/demo_vit/vit-tiny_mmseg.pth --force
echo "== 2/5 train ($CONFIG)"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --overwrite-work-dir
CKPT=$(cat "$WORK_DIR/last_checkpoint")
echo "== 3/5 test, single scale ($CKPT)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test_ss"
echo "== 4/5 test, multi-scale + flip (--tta)"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test_ms" --tta
if [ "${SKIP_CLS:-0}" != 1 ]; then
    CLS_CONFIG=configs/demo/davpt_vit-tiny_cls-shapes-32x32.py
    CLS_WORK_DIR=${CLS_WORK_DIR:-work_dirs/demo_davpt_cls}
    echo "== 5/5 classification: train + test ($CLS_CONFIG)"
    "$PY" tools/make_cls_demo_dataset.py --layout vtab --out data/demo_cls \
        --num-classes 6 --force
    "$PY" tools/train.py "$CLS_CONFIG" --work-dir "$CLS_WORK_DIR" \
        --overwrite-work-dir
    "$PY" tools/test.py "$CLS_CONFIG" "$(cat "$CLS_WORK_DIR/last_checkpoint")" \
        --work-dir "$CLS_WORK_DIR/test"
fi
echo "Done. Logs and checkpoints: $WORK_DIR (segmentation)${CLS_WORK_DIR:+, $CLS_WORK_DIR (classification)}"
