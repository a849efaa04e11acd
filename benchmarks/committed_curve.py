"""Write the learning curve the training-path test compares against (``tests/data/ecct_curve_BCH_n31_k16.json``).

    .venv/bin/python benchmarks/committed_curve.py [--sampling host] [--seed 0] [--out tests/data/ecct_curve_BCH_n31_k16.json]

A short ECCT fit (N=1, d=32, 8 heads, batch 128, Adam 5e-3 -> 1e-4 cosine, 3 epochs of 100 steps) on BCH(31,16),
validated after every epoch on 4,000 words at 4 dB; the curve is the validation -ln(BER) per epoch. The committed
file was made with ``--sampling host`` (batches drawn by the DataLoader, the path before on-device sampling).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.loggers import CSVLogger

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.train import fit

CODE = "BCH_n31_k16"
OVERRIDES = ["decoder.layers=1", "decoder.d_model=32", "decoder.heads=8", "data.batch_size=128",
             "data.batches_per_epoch=100", "trainer.max_epochs=3", "data.val_ebn0_db=[4.0]", "data.val_frames=4000",
             "stages.train.lr=5.0e-3"]


def learning_curve(*extra: str) -> list[float]:
    """Validation -ln(BER) at 4 dB after each epoch of the short fit, one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = compose(CODE, "ecct", "quick", [*OVERRIDES, *extra])
        with tempfile.TemporaryDirectory() as tmp:
            fit(get_code(CODE), config, Path(tmp), logger=CSVLogger(tmp, name="curve"), progress=False)
            rows = list(csv.DictReader(open(next(Path(tmp, "curve").glob("version_*")) / "metrics.csv")))
    finally:
        torch.set_num_threads(threads)
    return [float(r["val/neg_ln_ber_4dB"]) for r in rows if r.get("val/neg_ln_ber_4dB")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sampling", default="host", choices=["host", "device"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("tests/data/ecct_curve_BCH_n31_k16.json"))
    args = parser.parse_args()
    curve = learning_curve(f"data.sampling={args.sampling}", f"seed={args.seed}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "code": CODE,
                                    "overrides": [*OVERRIDES, f"data.sampling={args.sampling}", f"seed={args.seed}"],
                                    "steps": [100, 200, 300], "neg_ln_ber_4dB": curve}, indent=2) + "\n")
    print(curve)


if __name__ == "__main__":
    main()
