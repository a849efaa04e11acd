#!/usr/bin/env bash
# Transformer runs on a lent GPU (device tool); results land in $OUT (default benchmarks/results/gpu).
#   ECCT N=2 d=32 on BCH(31,16), quick-profile optimiser, ~150 s of training: the learning curve shows how
#     many steps the CPU acceptance run (20 min, ~10k steps) would need.
#   ECCT N=6 d=128 (paper profile architecture and batch; lr 5e-4 instead of 1e-4 because the paper's
#     1000 x 1000 steps do not fit a 15-minute lease), ~240 s of training.
set -euo pipefail
OUT=${OUT:-benchmarks/results/gpu}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
common=(--accelerator gpu --min-frame-errors 200 --max-frames 2000000 --eval-batch-size 20000 --out "$OUT")
# smoke: fails fast (seconds) if anything is off on this machine
$PY benchmarks/transformer_training.py --code BCH_n31_k16 --budget-s 3 --calibration-batches 20 \
    --set data.batches_per_epoch=50 --accelerator gpu --max-frames 20000 --out /tmp/smoke 2>&1 | grep -E "steps/s|Error|error" || true
test -f /tmp/smoke/ecct_BCH_n31_k16_N2_d32_gpu.json
$PY benchmarks/transformer_training.py --code BCH_n31_k16 --pipeline ecct --profile quick --budget-s ${BUDGET_A:-150} \
    --set data.batches_per_epoch=1000 "${common[@]}" 2>&1 | grep -vE "Warning|warn|Tip|available|LOCAL_RANK|^$"
$PY benchmarks/transformer_training.py --code BCH_n31_k16 --pipeline ecct --profile paper --budget-s ${BUDGET_B:-240} \
    --set data.batches_per_epoch=1000 --set data.val_frames=10000 --set stages.train.lr=5.0e-4 --keep-checkpoint \
    "${common[@]}" 2>&1 | grep -vE "Warning|warn|Tip|available|LOCAL_RANK|^$"
