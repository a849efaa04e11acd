"""Wall clock of the quick profile's budgeted fine-tune (``stages.finetune.budget_s``) of the shipped FECCT.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_budget.py --code PEG_n256_dv3_dc6 POLAR_n64_k48

For each code: the step-time and validation calibration, the planned steps and validation passes, the steps
taken and the seconds from the start of the calibration to the selected checkpoint, against the budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.pretrained import load_backbone
from eccflow.train import fit


def measure(name: str) -> dict:
    config = compose(name, "fecct", "quick")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        _, metrics = fit(get_code(name), config, Path(folder), stage="finetune", progress=False,
                         init_checkpoint=load_backbone().path)
        seconds = time.perf_counter() - start
        plan = json.loads((Path(folder) / "budget_plan.json").read_text())
    return {"code": name, "n": get_code(name).n, "budget_s": config["stages"]["finetune"]["budget_s"],
            "wall_s": seconds, "plan": plan, "steps": metrics["steps"], "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", nargs="+", required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/universal/finetune_budget.json"))
    args = parser.parse_args()
    rows = [measure(name) for name in args.code]
    for row in rows:
        print(f"{row['code']}: {row['wall_s']:.0f} s of {row['budget_s']} s, {row['steps']:.0f} steps "
              f"(planned {row['plan']['steps']:.0f}), {row['plan']['epochs']:.0f} validation passes of "
              f"{row['plan']['val_pass_s']:.1f} s", flush=True)
    kept = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []  # other codes' rows stay
    for row in rows:
        row["command"] = "python " + " ".join(sys.argv)
    rows += [row for row in kept if row["code"] not in args.code]
    args.out.write_text(json.dumps({"rows": sorted(rows, key=lambda row: row["n"])}, indent=2) + "\n")


if __name__ == "__main__":
    main()
