"""Helper of tests/test_ddp.py: ``python tests/ddp_fit.py OUT_DIR`` fits neural BP with 2 CPU DDP processes.

Lightning's ``ddp`` strategy starts rank 1 by re-running this script (same argv, LOCAL_RANK=1), so the
whole fit lives here rather than inside pytest. Each rank writes what it trained on to OUT_DIR:
``batches_rank<r>.txt`` (sha1 of each training batch's LLRs), ``losses_rank<r>.txt`` (its training losses)
and ``done_rank<r>.json``; the loggers (MLflow, the platform's, and CSV) write to OUT_DIR too.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.train import fit
from conftest import shrunk

CODE = "BCH_n31_k16"
OVERRIDES = shrunk("data.batches_per_epoch=3", "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                   "data.codewords=random")


class RecordBatches(L.Callback):
    """Per rank: a hash of every training batch's LLRs and the loss it gave."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        rank = trainer.global_rank
        digest = hashlib.sha1(batch["llr"].detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with open(self.out / f"batches_rank{rank}.txt", "a") as f:
            f.write(digest + "\n")
        with open(self.out / f"losses_rank{rank}.txt", "a") as f:
            f.write(f"{float(loss):.10g}\n")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        info = {"rank": trainer.global_rank, "world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__}
        (self.out / f"done_rank{trainer.global_rank}.json").write_text(json.dumps(info))


def main(out: Path) -> None:
    config = compose(CODE, "neural_bp", "quick", overrides=OVERRIDES)
    loggers = [MLFlowLogger(experiment_name="ddp", tracking_uri=f"sqlite:///{out}/mlflow.db"),
               CSVLogger(save_dir=str(out), name="csv")]
    model, metrics = fit(get_code(CODE), config, out / "run", logger=loggers, callbacks=[RecordBatches(out)],
                         progress=False)
    if model.is_file():
        (out / "fit_result.json").write_text(json.dumps({"model": str(model), **metrics}))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
