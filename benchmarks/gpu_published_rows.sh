#!/usr/bin/env bash
# The published ECCT rows on a lent GPU, end to end on a bare machine: ECCT N=6 d=128 and N=2 d=32 on BCH(63,45)
# and POLAR(64,32) with the PROFILE's recipe (paper: the large-batch recipe, its batch and scaled learning rate with
# warm-up, Adam -> 5e-7 cosine; paper_exact: the papers' Adam 1e-4 at batch 128, 1000 x 1000 steps = 1.28e8 words;
# LR and BATCH replace the profile's), as many training words as fit BUDGET seconds per run (the step rate is measured first and
# the cosine schedule sized to the budget; each result's .md states the steps and words), then the model, BP-5 and
# BP-50 decode the same words under the `paper` stop rule (> 100 frame errors and >= 1e5 frames), with the
# paired differences and the published row beside each cell.
#
#   Here, once: cp -r ../shared/codes .devcodes   (the device gets the working tree, not ../shared: carry .devcodes)
#   On the device (repo root, run with carry [".devcodes"]):  OUT=$OUT BUDGET=100 bash benchmarks/gpu_published_rows.sh
#   On the CPU (a test of the script, about 5 minutes in all):
#     ACCEL=cpu BUDGET=2 BATCHES=5 MAX_FRAMES=1000 RULE=budget OUT=/tmp/rows PY=.venv/bin/python bash benchmarks/gpu_published_rows.sh
#
# Twelve files come back under $OUT: <tag>.json, <tag>.md and <tag>.png (learning curve) for the four runs.
set -euo pipefail
OUT=${OUT:-benchmarks/results/gpu_published_rows}
PY=${PY:-python3}
ACCEL=${ACCEL:-gpu}
BUDGET=${BUDGET:-100}          # training seconds per run
PROFILE=${PROFILE:-paper}
LR=${LR:-}                     # empty: the profile's learning rate (or recipe); set: this rate, the recipe off
BATCH=${BATCH:-}               # empty: the profile's batch
RULE=${RULE:-paper}
MAX_FRAMES=${MAX_FRAMES:-2000000}
BATCHES=${BATCHES:-500}        # steps per epoch (validation after each); the budget sets the number of epochs
EXTRA=${EXTRA:-}               # more --set KEY=VALUE pairs, e.g. "--set trainer.precision=bf16-mixed"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
[ -d .devcodes ] && export ECCFLOW_CODES_DIR=${ECCFLOW_CODES_DIR:-$PWD/.devcodes}
mkdir -p "$OUT"

# a bare machine: install what is missing beside the torch that is there (never a newer torch)
$PY -c "import lightning, mlflow, optuna, torchmetrics, scipy" 2>/dev/null \
    || $PY -m pip install -q "torch==$($PY -c 'import torch; print(torch.__version__.split("+")[0])')" \
        lightning torchmetrics mlflow optuna scipy

RECIPE=()
[ -n "$BATCH" ] && RECIPE+=(--set data.batch_size="$BATCH")
[ -n "$LR" ] && RECIPE+=(--set stages.train.recipe=null --set stages.train.lr="$LR")

run() {  # code layers d_model budget out [extra args...]
    local code=$1 layers=$2 d_model=$3 budget=$4 out=$5; shift 5
    $PY benchmarks/transformer_training.py --code "$code" --pipeline ecct --profile "$PROFILE" --accelerator "$ACCEL" \
        --budget-s "$budget" --calibration-batches "$((BATCHES < 50 ? BATCHES : 50))" --set decoder.layers="$layers" --set decoder.d_model="$d_model" \
        "${RECIPE[@]}" --set data.batches_per_epoch="$BATCHES" \
        --set data.val_frames=2000 --rule "$RULE" --max-frames "$MAX_FRAMES" --eval-batch-size 20000 \
        --tag "ecct_${code}_N${layers}_d${d_model}_${ACCEL}" --out "$out" $EXTRA "$@" \
        2>&1 | grep -vE "Warning|warn|Tip|available|LOCAL_RANK|^$" || true
    test -f "$out/ecct_${code}_N${layers}_d${d_model}_${ACCEL}.json"
}

# smoke: seconds, fails fast if anything is off on this machine (kept out of $OUT)
run BCH_n63_k45 2 32 1 /tmp/eccflow_smoke --set data.batches_per_epoch=5 --calibration-batches 5 --max-frames 1000 --rule budget >/dev/null
echo "smoke ok"

for code in BCH_n63_k45 POLAR_n64_k32; do
    for size in "6 128" "2 32"; do
        run "$code" $size "$BUDGET" "$OUT"
    done
done
ls -la "$OUT"
