#!/usr/bin/env bash
# The embedded demo, on the digits transfer miniature: pretrain a tiny ViT
# on the handwritten digits 0-4 (cached), convert it, generate digit scenes
# of the unseen digits 5-9, train DA-VPT segmentation (SETR-PUP, frozen
# pretrained ViT), test it single-scale and with multi-scale TTA, draw the
# prompts' attention, then DA-VPT few-shot classification of digits 5-9.
# Each step prints a short account; its full output goes to
# $WORK_DIR/logs/<step>.log (and the runs' own logs to their work dirs).
# Uses the virtual environment of tools/install.sh. SKIP_CLS=1 runs the
# segmentation part only. Run again, it starts over: the converted weights
# and generated data are rewritten (identical for the same seed; the
# pretrained ViT is kept as a cache) and the earlier demo runs' checkpoints
# in WORK_DIR / CLS_WORK_DIR are deleted (--overwrite-work-dir). Set
# WORK_DIR / CLS_WORK_DIR to keep an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-${VENV:-.venv}/bin/python}
CONFIG=${CONFIG:-configs/digits/seg/davpt_setr_vit-digits_scenes-64x64.py}
CLS_CONFIG=${CLS_CONFIG:-configs/digits/cls/davpt_vit-digits.py}
WORK_DIR=${WORK_DIR:-work_dirs/demo_davpt}
CLS_WORK_DIR=${CLS_WORK_DIR:-work_dirs/demo_davpt_cls}
VIT_TIMM=data/digits/vit-digits_timm.pth
VIT=data/digits/vit-digits_mmseg.pth
SCENES=data/digits/seg/seed0
CLS_DATA=data/digits/cls/seed0
LOGS=$WORK_DIR/logs
mkdir -p "$LOGS"
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}

# step NAME CMD...: run CMD with its output in $LOGS/NAME.log and its
# duration in $T; on failure show the log's tail and stop.
step() {
    local name=$1 start=$SECONDS
    shift
    if ! "$@" >"$LOGS/$name.log" 2>&1; then
        echo "   FAILED: $name (full log: $LOGS/$name.log); its last lines:"
        tail -n 25 "$LOGS/$name.log" | sed 's/^/   | /'
        exit 1
    fi
    T="$((SECONDS - start)) s"
}
summary() { "$PY" tools/run_summary.py "$@"; }
TOTAL=$SECONDS
echo "Full output of every step: $LOGS/<step>.log"

echo "== 1/7 tiny ViT pretrained on digits 0-4 (4 layers, 64 dims, 32x32)"
if [ -f "$VIT_TIMM" ]; then
    echo "   cached: $VIT_TIMM (delete it to pretrain again)"
else
    step pretrain "$PY" tools/pretrain_digits_vit.py --out "$VIT_TIMM"
    echo "   $(grep -E '^epoch' "$LOGS/pretrain.log" | tail -n 1) [$T]"
fi
step convert "$PY" tools/convert_vit_checkpoint.py "$VIT_TIMM" "$VIT" --force
echo "   converted to MMSegmentation's layout: $VIT [$T]"

echo "== 2/7 digit scenes (64x64, digits 5-9, disjoint scans per split)"
step scenes "$PY" tools/make_digit_scenes.py --root "$SCENES" --seed 0
echo "   $(tail -n 1 "$LOGS/scenes.log") [$T]"

echo "== 3/7 train DA-VPT segmentation ($CONFIG)"
step train "$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
    --overwrite-work-dir
CKPT=$(cat "$WORK_DIR/last_checkpoint")
echo "   val split: $(summary "$WORK_DIR") [$T]"
echo "   class -> prompt mapping: $(grep -c '' \
    "$WORK_DIR/davpt_mapping_history.jsonl") k-means passes; last:" \
    "$(grep 'prompt -> classes: ' "$LOGS/train.log" | tail -n 1 \
       | sed 's/.*prompt -> classes: //')"
echo "   checkpoint: $CKPT"

echo "== 4/7 test, single scale (test split)"
step test_ss "$PY" tools/test.py "$CONFIG" "$CKPT" \
    --work-dir "$WORK_DIR/test_ss"
echo "   test split: $(summary "$WORK_DIR/test_ss") [$T]"

echo "== 5/7 test, multi-scale TTA (--tta: 0.75, 1.0, 1.25)"
step test_tta "$PY" tools/test.py "$CONFIG" "$CKPT" \
    --work-dir "$WORK_DIR/test_tta" --tta
echo "   test split: $(summary "$WORK_DIR/test_tta") [$T]"

echo "== 6/7 prompt attention of the guided layer on a test scene"
step attention "$PY" tools/visualize_prompt_attention.py "$CONFIG" "$CKPT" \
    "$SCENES/img_dir/test/0000.png" --out-dir "$WORK_DIR/prompt_attention" \
    --force
echo "   $(ls "$WORK_DIR/prompt_attention" | grep -c png) pictures in" \
    "$WORK_DIR/prompt_attention [$T]"

if [ "${SKIP_CLS:-0}" != 1 ]; then
    echo "== 7/7 DA-VPT classification of digits 5-9, 20 shots ($CLS_CONFIG)"
    step cls_data "$PY" -c "import sys
from mmseg_davpt.digits.cls_data import make_digits_cls_data
make_digits_cls_data(sys.argv[1], seed=0)" "$CLS_DATA"
    # the final protocol: train on train + val (10 + 10 per class), score
    # the test split once, at the end
    step cls_train "$PY" tools/train.py "$CLS_CONFIG" \
        --work-dir "$CLS_WORK_DIR" --overwrite-work-dir --cfg-options \
        "train_dataloader.dataset.data_root=$CLS_DATA" \
        "val_dataloader.dataset.data_root=$CLS_DATA" \
        train_dataloader.dataset.split=train800val200 \
        val_dataloader.dataset.split=test
    echo "   test split: $(summary "$CLS_WORK_DIR" --keys accuracy/top1)" \
        "[$T]; run: $CLS_WORK_DIR"
fi
[ "${SKIP_CLS:-0}" = 1 ] && CLS_WORK_DIR=
echo "Done in $((SECONDS - TOTAL)) s. Step logs: $LOGS; runs: $WORK_DIR" \
    "${CLS_WORK_DIR:+and $CLS_WORK_DIR}"
