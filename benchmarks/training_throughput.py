"""Training throughput of eccflow's ECCT next to the reference ECCT (Choukroun & Wolf), side by side in one run.

    .venv/bin/python benchmarks/training_throughput.py --out benchmarks/results/training_throughput \
        [--sections rows stage extras] [--codes BCH_n31_k16 ...]

Rows: ECCT N=2 d=32 and N=6 d=128 (8 heads) on BCH(31,16), BCH(63,45) and LDPC(121,60), batch 128 and 1024,
one and two threads. Per row, alternating in the same process:

* ``eccflow step``: one training step as the train stage runs it without Lightning: a batch drawn by the
  device sampler, the noise-logit BCE, backward, gradient clipping at 1, Adam, the cosine schedule;
* ``reference step``: the reference's own ``train()`` loop (its model, its per-sample ``ECC_Dataset`` through a
  ``DataLoader``, its loss, Adam), imported from ``../shared/peers/ecct-reference`` (never copied).

Then, on BCH(31,16) N=2 d=32 with one thread, the whole train stage (``eccflow.train.fit``: Lightning, the
checkpoints and the per-epoch validation on 3 x 2,000 words with the cached BP baseline) against the reference
loop, at batch 128 and 1024; the Lightning overhead per step (stage against bare step, validation excluded);
and ``trainer.compile`` (inductor) against eager, with the largest difference of their logits.
Each timing runs until ``--seconds`` have passed (after a warm-up of 3 steps) and keeps the best of
``--repeats`` alternations.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from eccflow.eval.timing import steps_per_second
from eccflow.codes import get_code
from eccflow.config import compose, decoder_preset
from eccflow.data import DeviceSampler, EbN0Sampler
from eccflow.train import build_lit_module, fit
from eccflow.lit.base import ADAM_OPTIONS

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "peers" / "ecct-reference"
SIZES = {"N2_d32": "small", "N6_d128": "paper"}  # row label -> eccflow/conf/sizes.yaml
CODES = ["BCH_n31_k16", "BCH_n63_k45", "LDPC_n121_k60"]


def ecct_config(code: str, size: str, batch: int, extra: tuple[str, ...] = ()) -> dict:
    return compose(code, "ecct", "quick", [f"decoder.size={size}", f"data.batch_size={batch}", "data.train_ebn0_db=[2.0,3.0,4.0,5.0,6.0,7.0]",
                                           *extra])


def eccflow_step(code_name: str, size: str, batch: int, compile_backend: str | None = None):
    """A closure running one bare training step of eccflow's ECCT, and the lit module."""
    code = get_code(code_name)
    config = ecct_config(code_name, size, batch)
    lit = build_lit_module(code, config)
    if compile_backend:
        lit.compile_network(compile_backend)
    d = config["data"]
    sampler = DeviceSampler(code, EbN0Sampler.from_config(d["train_ebn0_db"]), batch, d["codewords"], config["seed"])
    optimizer = torch.optim.Adam(lit.net.parameters(), lr=2e-3, **ADAM_OPTIONS[config["stages"]["train"]["adam"]])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10**6, eta_min=5e-7)
    counter = iter(range(10**9))

    def step() -> None:
        loss, _ = lit.model_step(sampler.draw(0, 0, next(counter), torch.device("cpu")))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lit.net.parameters(), 1.0)
        optimizer.step()
        schedule.step()

    return step, lit


def reference_step(code_name: str, size: str, batch: int, steps: int = 20):
    """A closure running ``steps`` steps of the reference's own ``train()`` loop; returns (closure, steps)."""
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    import Main  # noqa: E402  (the reference implementation, imported as a peer)
    from Model import ECC_Transformer  # noqa: E402

    logging.getLogger().setLevel(logging.WARNING)
    code = get_code(code_name)
    ref_code = SimpleNamespace(n=code.n, k=code.k, code_type=code.family,
                               generator_matrix=torch.from_numpy(code.G.copy()).transpose(0, 1).long(),
                               pc_matrix=torch.from_numpy(code.H.copy()).long())
    preset = decoder_preset("ecct", size)
    model = ECC_Transformer(SimpleNamespace(code=ref_code, h=preset["heads"], d_model=preset["d_model"],
                                            N_dec=preset["layers"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    sigmas = [Main.EbN0_to_std(e, code.k / code.n) for e in range(2, 8)]
    loader = torch.utils.data.DataLoader(Main.ECC_Dataset(ref_code, sigmas, len=batch * steps, zero_cw=True),
                                         batch_size=batch, shuffle=True, num_workers=0)

    def run() -> None:
        Main.train(model, torch.device("cpu"), loader, optimizer, 1, LR=2e-3)

    return run, steps


def ratio_row(code: str, size: str, batch: int, threads: int, seconds: float, repeats: int,
              max_step_seconds: float) -> dict:
    torch.set_num_threads(threads)
    ours, _ = eccflow_step(code, SIZES[size], batch)
    start = time.perf_counter()
    ours()
    first = time.perf_counter() - start
    row = {"code": code, "size": size, "batch": batch, "threads": threads}
    if first > max_step_seconds:  # the reference is slower still: the row would take many minutes
        return {**row, "skipped": f"one eccflow step takes {first:.1f} s > --max-step-seconds {max_step_seconds}"}
    ref, ref_steps = reference_step(code, SIZES[size], batch, steps=max(2, int(20 * 128 / batch)))
    best_ours, best_ref = 0.0, 0.0
    for _ in range(repeats):  # alternate, keep the best of each (the least disturbed by other load)
        best_ours = max(best_ours, steps_per_second(ours, seconds))
        best_ref = max(best_ref, ref_steps * steps_per_second(ref, seconds))
    return {**row, "eccflow_steps_s": best_ours,
            "reference_steps_s": best_ref, "ratio": best_ours / best_ref, "eccflow_words_s": best_ours * batch,
            "reference_words_s": best_ref * batch}


def stage_rows(seconds: float, repeats: int) -> list[dict]:
    """The train stage's own wall clock (validation included) against the reference loop, and the Lightning
    overhead per step, BCH(31,16) N=2 d=32, one thread."""
    torch.set_num_threads(1)
    rows, shapes = [], ((128, 500), (1024, 40))
    # the reference first, with the C library's default allocator: the train stage then keeps freed host memory
    # in this process (eccflow.host_memory), which would also speed up anything timed after it
    references = {}
    for batch, _ in shapes:
        ref, ref_steps = reference_step("BCH_n31_k16", "small", batch, steps=max(3, int(20 * 128 / batch)))
        references[batch] = max(ref_steps * steps_per_second(ref, seconds) for _ in range(repeats))
    for batch, steps in shapes:
        code = get_code("BCH_n31_k16")
        config = ecct_config(code.name, "small", batch, ("trainer.max_epochs=2", f"data.batches_per_epoch={steps}",
                                                       "data.val_frames=2000"))
        no_val = ecct_config(code.name, "small", batch, ("trainer.max_epochs=1", f"data.batches_per_epoch={steps}",
                                                       "data.val_frames=1", "data.val_ebn0_db=[4.0]"))
        stage, lightning = 0.0, 0.0
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                _, metrics = fit(code, config, Path(tmp), progress=False)
                stage = max(stage, 2 * steps / metrics["train_seconds"])
            with tempfile.TemporaryDirectory() as tmp:
                _, metrics = fit(code, no_val, Path(tmp), progress=False)
                lightning = max(lightning, steps / metrics["train_seconds"])
        ours, _ = eccflow_step(code.name, "small", batch)
        bare, reference = max(steps_per_second(ours, seconds) for _ in range(repeats)), references[batch]
        rows.append({"batch": batch, "stage_steps_s": stage, "lightning_no_val_steps_s": lightning,
                     "bare_steps_s": bare, "reference_steps_s": reference, "stage_ratio": stage / reference,
                     "lightning_overhead_ms": 1e3 * (1 / lightning - 1 / bare)})
    return rows


def compile_row(seconds: float, repeats: int) -> dict:
    """Inductor-compiled against eager steps, BCH(31,16) N=2 d=32, batch 128, one thread."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    eager, eager_lit = eccflow_step("BCH_n31_k16", "small", 128)
    torch.manual_seed(0)
    compiled, compiled_lit = eccflow_step("BCH_n31_k16", "small", 128, compile_backend="inductor")
    llr = DeviceSampler(get_code("BCH_n31_k16"), EbN0Sampler.from_config(4.0), 512, "zero", 1).draw(
        0, 0, 0, torch.device("cpu"))["llr"]
    start = time.perf_counter()
    compiled()
    compile_seconds = time.perf_counter() - start
    eager_lit.net.load_state_dict(compiled_lit.net.state_dict())  # the same weights: the logits must agree
    with torch.no_grad():
        difference = float((compiled_lit._logits(llr) - eager_lit.net.logits(llr)).abs().max())
    rates = {"eager": 0.0, "compiled": 0.0}
    for _ in range(repeats):
        rates["eager"] = max(rates["eager"], steps_per_second(eager, seconds))
        rates["compiled"] = max(rates["compiled"], steps_per_second(compiled, seconds))
    return {"eager_steps_s": rates["eager"], "compiled_steps_s": rates["compiled"],
            "speedup": rates["compiled"] / rates["eager"], "compile_seconds": compile_seconds,
            "max_logit_difference": difference}


def attention_row(seconds: float, repeats: int) -> dict:
    """The CPU attention, forward + backward, on ECCT N=2 d=32 shapes of BCH(31,16) at batch 128 (8 heads of 4
    dimensions over 46 tokens): the equation alone (written out, torch's SDPA), and a whole attention layer
    (projections included) with the written-out equation and with the fused kernel."""
    import torch.nn.functional as F

    from eccflow.codes.graph import tanner_distances
    from eccflow.decoders.transformer import TransformerDecoder
    from eccflow.nn.attention import explicit_attention

    torch.set_num_threads(1)
    code = get_code("BCH_n31_k16")
    distance = torch.as_tensor(tanner_distances(code, 2))
    attention = TransformerDecoder(code, {**decoder_preset("ecct", "small"), "layers": 1}).blocks[0].attention
    bias = attention.score_bias(distance)
    tokens = code.n + code.num_checks
    q, k, v = (torch.randn(128, 8, tokens, 4, requires_grad=True) for _ in range(3))
    x = torch.randn(128, tokens, 32, requires_grad=True)
    kernels = {
        "explicit": lambda: explicit_attention(q, k, v, bias).sum().backward(),
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias).sum().backward(),
        "layer_dense": lambda: attention(x, distance, "dense").sum().backward(),
        "layer_fused": lambda: attention(x, distance, "fused").sum().backward(),
    }
    rates = dict.fromkeys(kernels, 0.0)
    for _ in range(repeats):
        for name, run in kernels.items():
            rates[name] = max(rates[name], steps_per_second(run, seconds))
    return {"explicit_ms": 1e3 / rates["explicit"], "sdpa_ms": 1e3 / rates["sdpa"],
            "speedup": rates["explicit"] / rates["sdpa"], "layer_dense_ms": 1e3 / rates["layer_dense"],
            "layer_fused_ms": 1e3 / rates["layer_fused"], "fused_speedup": rates["layer_fused"] / rates["layer_dense"]}


ALLOCATOR_PROBE = """
import resource, sys, time, torch
sys.path.insert(0, {here!r})
from training_throughput import eccflow_step
from eccflow.host_memory import keep_freed_memory
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    keep_freed_memory()
step, _ = eccflow_step("BCH_n31_k16", "small", int(sys.argv[2]))
for _ in range(5):
    step()
steps = int(sys.argv[3])
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(seconds / steps, (after.ru_utime - before.ru_utime) / steps, (after.ru_stime - before.ru_stime) / steps,
      (after.ru_minflt - before.ru_minflt) / steps)
"""


def allocator_rows() -> list[dict]:
    """The bare step, BCH(31,16) N=2 d=32, one thread, with the C library's default allocator and with freed host
    memory kept in the process (:mod:`eccflow.host_memory`); each in a fresh process (the setting is for good)."""
    import subprocess

    code = ALLOCATOR_PROBE.format(here=str(Path(__file__).resolve().parent))
    rows = []
    for batch, steps in ((128, 30), (1024, 5)):
        row = {"batch": batch}
        for mode in ("system", "keep"):
            out = subprocess.run([sys.executable, "-c", code, mode, str(batch), str(steps)], capture_output=True,
                                 text=True, check=True).stdout.split()
            wall, user, system, faults = (float(v) for v in out[-4:])
            row[mode] = {"ms_per_step": 1e3 * wall, "user_ms": 1e3 * user, "system_ms": 1e3 * system,
                         "page_faults": faults}
        row["speedup"] = row["system"]["ms_per_step"] / row["keep"]["ms_per_step"]
        rows.append(row)
    return rows


def markdown(sections: dict[str, dict]) -> str:
    lines = ["# Training throughput: eccflow ECCT vs the reference ECCT", ""]
    if "rows" in sections:
        rows = sections["rows"]
        lines += ["## Training steps, side by side (bare step against the reference's own train loop)", "",
                  f"Command: `{rows['command']}`; machine: {rows['machine']}", "",
                  "| code | model | batch | threads | eccflow steps/s | reference steps/s | ratio | eccflow words/s | reference words/s |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows["rows"]:
            if "skipped" in r:
                lines.append(f"| {r['code']} | {r['size']} | {r['batch']} | {r['threads']} | skipped: {r['skipped']} | | | | |")
                continue
            lines.append(f"| {r['code']} | {r['size']} | {r['batch']} | {r['threads']} | {r['eccflow_steps_s']:.2f} | "
                         f"{r['reference_steps_s']:.2f} | {r['ratio']:.2f}x | {r['eccflow_words_s']:,.0f} | "
                         f"{r['reference_words_s']:,.0f} |")
    if "stage" in sections:
        stage = sections["stage"]
        lines += ["", "## The train stage's own wall clock (BCH(31,16), N=2 d=32, one thread)", "",
                  f"Command: `{stage['command']}`", "",
                  "| batch | train stage steps/s (validation included) | reference steps/s | ratio | Lightning, no validation | "
                  "bare step | Lightning overhead per step |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in stage["stage"]:
            lines.append(f"| {r['batch']} | {r['stage_steps_s']:.2f} | {r['reference_steps_s']:.2f} | {r['stage_ratio']:.2f}x | "
                         f"{r['lightning_no_val_steps_s']:.2f} | {r['bare_steps_s']:.2f} | {r['lightning_overhead_ms']:.1f} ms |")
    extras = sections.get("extras", {})
    if "attention" in extras:
        a = extras["attention"]
        lines += ["", "## CPU attention, forward + backward (BCH(31,16) shapes, batch 128, 8 heads of 4)", "",
                  f"Command: `{extras['command']}`", "",
                  f"The equation alone: written out {a['explicit_ms']:.1f} ms, SDPA {a['sdpa_ms']:.1f} ms ({a['speedup']:.2f}x).",
                  "", f"A whole attention layer (QKV and output projections included): written out "
                  f"{a['layer_dense_ms']:.1f} ms, fused kernel {a['layer_fused_ms']:.1f} ms ({a['fused_speedup']:.2f}x)."
                  if "layer_fused_ms" in a else ""]
    if "allocator" in extras:
        lines += ["", "## Freed host memory kept in the process (BCH(31,16), N=2 d=32, bare step, one thread)", "",
                  f"Command: `{extras['command']}`", "",
                  "| batch | allocator | ms per step | user CPU ms | system CPU ms | page faults per step |",
                  "|---:|---|---:|---:|---:|---:|"]
        for r in extras["allocator"]:
            for mode, label in (("system", "C library default"), ("keep", "kept (eccflow.host_memory)")):
                m = r[mode]
                lines.append(f"| {r['batch']} | {label} | {m['ms_per_step']:.1f} | {m['user_ms']:.1f} | "
                             f"{m['system_ms']:.1f} | {m['page_faults']:,.0f} |")
    if "compile" in extras:
        c = extras["compile"]
        lines += ["", "## trainer.compile (inductor) against eager (BCH(31,16), N=2 d=32, batch 128, one thread)", "",
                  f"eager {c['eager_steps_s']:.1f} steps/s, compiled {c['compiled_steps_s']:.1f} steps/s "
                  f"({c['speedup']:.2f}x) after {c['compile_seconds']:.0f} s of compilation; largest logit difference "
                  f"{c['max_logit_difference']:.2e}."]
    return "\n".join(lines) + "\n"


SECTIONS = ("rows", "stage", "extras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training_throughput"))
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-step-seconds", type=float, default=4.0, help="skip rows whose eccflow step is slower")
    parser.add_argument("--codes", nargs="+", default=CODES, help="codes of the side-by-side rows")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS,
                        help="rows: side-by-side steps; stage: the train stage's wall clock; extras: attention, compile")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(sys.argv)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads available, "
               f"torch {torch.__version__}")
    if "rows" in args.sections:
        rows = []
        for code in args.codes:
            for size in SIZES:
                for batch in (128, 1024):
                    for threads in (1, 2):
                        rows.append(ratio_row(code, size, batch, threads, args.seconds, args.repeats,
                                              args.max_step_seconds))
                        print(json.dumps(rows[-1]), flush=True)
        write_section(args.out, "rows", {"command": command, "machine": machine, "rows": rows})
    if "stage" in args.sections:
        write_section(args.out, "stage", {"command": command, "machine": machine,
                                          "stage": stage_rows(args.seconds, args.repeats)})
    if "extras" in args.sections:
        extras = {"command": command, "machine": machine, "allocator": allocator_rows(),
                  "attention": attention_row(args.seconds, args.repeats)}
        if not args.no_compile:
            extras["compile"] = compile_row(args.seconds, args.repeats)
        write_section(args.out, "extras", extras)
    sections = {name: json.loads((args.out / f"{name}.json").read_text()) for name in SECTIONS
                if (args.out / f"{name}.json").is_file()}
    (args.out / "throughput.md").write_text(markdown(sections))
    print(markdown(sections))


def write_section(out: Path, name: str, values: dict) -> None:
    """One section's results as ``<name>.json`` (the markdown is rebuilt from every section present)."""
    (out / f"{name}.json").write_text(json.dumps(values, indent=2))


if __name__ == "__main__":
    main()
