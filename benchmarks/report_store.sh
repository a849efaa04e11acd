#!/usr/bin/env bash
# Fill the MLflow store that `make report` reads with ECCT, FECCT and neural BP runs (each beside hard decision,
# BP-5, BP-50 and OSD-2 on the same words) on BCH(31,16), BCH(63,45), POLAR(64,32) and LDPC(49,24).
# Reduced budgets (CPU minutes: ECCT 1,000 steps, FECCT 1,000 pretraining + 500 fine-tuning steps, 30,000
# evaluation frames per Eb/N0, far below the papers' 10^6 steps and 10^5 frames): these runs exercise the
# instrument and the report, they are not paper-scale results. Rerunning is cheap: finished stages are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ECCFLOW=${ECCFLOW:-.venv/bin/eccflow}
CODES=${CODES:-"BCH_n31_k16 BCH_n63_k45 POLAR_n64_k32 LDPC_n49_k24"}
EVAL=(--override stages.evaluate.max_frames=30000)
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline neural_bp --profile quick "${EVAL[@]}"
done
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline ecct --profile quick --override trainer.max_epochs=2 "${EVAL[@]}"
done
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline fecct --profile quick \
        --override stages.pretrain.max_epochs=2 --override stages.finetune.max_epochs=1 "${EVAL[@]}"
done
