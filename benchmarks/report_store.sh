#!/usr/bin/env bash
# Fill the MLflow store that `make report` reads with ECCT, FECCT and neural BP runs (each beside the
# classical baselines of its evaluate stage) on BCH(31,16), BCH(63,45), POLAR(64,32) and LDPC(49,24).
# Reduced transformer budgets (CPU minutes, far below the papers' 10^6 steps): these runs exercise the
# report, they are not paper-scale results. Rerunning is cheap: finished stages are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ECCFLOW=${ECCFLOW:-.venv/bin/eccflow}
CODES=${CODES:-"BCH_n31_k16 BCH_n63_k45 POLAR_n64_k32 LDPC_n49_k24"}
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline neural_bp --profile quick
done
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline ecct --profile quick --override trainer.max_epochs=6
done
for code in $CODES; do
    $ECCFLOW pipeline --code "$code" --pipeline fecct --profile quick \
        --override stages.pretrain.max_epochs=6 --override stages.finetune.max_epochs=2
done
