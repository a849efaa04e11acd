"""NWD training ablation (NWD paper Fig. 6 analogue): active learning and NVE epoch selection.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_ablation.py [--code scldpc_dv3_dc6_w3_L20_M50] \
        [--ebn0 4.5 5.0] [--out benchmarks/results/nwd_scldpc_dv3_dc6_w3_L20_M50/ablation.md]

Three arms with the same decoder, loss, optimiser and number of epochs (the quick profile's ``nwd`` stage):
active learning + NVE selection (the pipeline's choice), plain channel samples (the same frames per epoch,
Eb/N0 drawn uniformly from the training list) + NVE selection, and active learning + the last epoch.
Each trained window decoder then decodes chains; chain FER with Wilson 95% intervals, next to WD.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.decoders.window import ChainDecoder, WindowDecoder
from eccflow.eval.chain import evaluate_chain
from eccflow.lit import load_decoder
from eccflow.window_training import train_window_decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default="scldpc_dv3_dc6_w3_L20_M50")
    parser.add_argument("--ebn0", type=float, nargs="+", default=[4.5, 5.0])
    parser.add_argument("--max-frames", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    code = get_code(args.code)
    config = compose(code.name, "nwd", "quick")
    out = args.out or Path("benchmarks/results") / f"nwd_{code.name}" / "ablation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    arms: dict[str, WindowDecoder] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, active in (("active learning", True), ("plain samples", False)):
            cfg = copy.deepcopy(config)
            cfg["stages"]["nwd"]["active"] = active
            start = time.perf_counter()
            model, _ = train_window_decoder(code, cfg, "nwd", Path(tmp) / label.replace(" ", "_"))
            seconds[label] = time.perf_counter() - start
            arms[f"NWD (target), {label}, NVE-selected epoch"] = load_decoder(model)
            if active:
                arms["NWD (target), active learning, last epoch"] = load_decoder(model.parent / "checkpoints" / "last.ckpt")
    wd = WindowDecoder(code, config["decoder"]["window"], config["decoder"]["target"], config["decoder"]["iterations"],
                       neural=False, normalization=float(config["decoder"]["wd_normalization"]))
    rows = []
    for name, decoder in {"WD": wd, **arms}.items():
        for p in evaluate_chain(ChainDecoder(decoder), args.ebn0, max_frames=args.max_frames, batch_size=2000,
                                seed=config["seed"]):
            rows.append(f"| {name} | {p.ebn0_db:g} | {p.fer:.3e} [{p.fer_ci95[0]:.2e}, {p.fer_ci95[1]:.2e}] | "
                        f"{p.frame_errors} | {p.frames} |")
    d = config["decoder"]
    text = [f"# NWD training ablation on {code.name} (W = {d['window']}, p = {d['target']}, I = {d['iterations']})", "",
            "Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nwd_ablation.py`", "",
            f"Training: {config['trainer']['max_epochs']} epochs per arm, {config['stages']['nwd']['frames_per_snr']} "
            f"frames per Eb/N0 in {config['data']['train_ebn0_db']} dB per epoch; training seconds: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()), "",
            "| decoder | Eb/N0 (dB) | chain FER [95% CI] | frame errors | frames |", "|---|---:|---|---:|---:|", *rows, ""]
    out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
