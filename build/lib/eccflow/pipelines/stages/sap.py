"""``sap`` stage: retrieve a pruning mask for CODE from the spectral mask library, or derive and insert one.

The input ``checkpoint`` is the pretrained universal backbone; its content digest names the library
(``<library_dir>/<backbone id>.json``), so masks are only ever reused on the backbone they were
derived on. Reuse when S = exp(-d/T) >= tau; otherwise Fisher pruning on CODE's calibration stream
(same settings as the ``prune`` stage) and an atomic insert. Logs the decision, similarity, retrieval
and derivation wall-clock, and the library file as a versioned MLflow artifact.

``selection`` makes the controls the SAP paper compares against: ``spectral`` (SAP itself), ``least_similar``
(the mask of the least similar library entry, the cross-family mismatched case) and ``random`` (as many heads
and channels per block as SAP's mask, so the same FLOPs, chosen at random with ``random_seed``). The controls
never insert into the library.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import mlflow
import torch

from eccflow.compress.fisher import apply_mask, calibrated_mask, network_size
from eccflow.compress.sap import LibraryEntry, MaskLibrary, random_mask_like, signature
from eccflow.errors import ConfigError
from eccflow.lit import load_decoder, read_checkpoint, save_decoder
from eccflow.home import store_dir
from eccflow.pipelines.runner import StageContext, StageResult, file_digest, stage


SELECTIONS = ("spectral", "least_similar", "random")


def library_for(ctx: StageContext, checkpoint: str) -> MaskLibrary:
    st = ctx.stage_config
    root = Path(st["library_dir"]) if st["library_dir"] else store_dir("sap", create=False)
    backbone = f"{ctx.config['decoder']['family']}-{file_digest(checkpoint)}"
    return MaskLibrary(root / f"{backbone}.json", backbone)


@stage("sap")
def sap(ctx: StageContext) -> StageResult:
    st = ctx.stage_config
    checkpoint = ctx.inputs.get("checkpoint")
    if checkpoint is None:
        raise ConfigError("the sap stage needs the pretrained backbone checkpoint from an earlier stage")
    library = library_for(ctx, checkpoint)
    model = load_decoder(checkpoint, code=ctx.code)
    start = time.perf_counter()
    target = signature(ctx.code, 4)
    selection = st.get("selection", "spectral")
    if selection not in SELECTIONS:
        raise ConfigError(f"stages.{ctx.name}.selection must be one of {list(SELECTIONS)}, got {selection!r}")
    temperature, count = float(st["temperature"]), int(st["eigenvalues"])
    if selection == "least_similar":
        found = library.least_similar(target, temperature=temperature, count=count)
    else:
        found = library.retrieve(target, tau=float(st["tau"]), temperature=temperature, count=count)
    retrieval_seconds = time.perf_counter() - start
    metrics = {"similarity": found.similarity, "reused": float(found.reuse), "retrieval_seconds": retrieval_seconds}
    if found.reuse:
        mask = found.entry.mask
        mlflow.set_tags({"sap_decision": "reuse", "sap_source_code": found.entry.code})
    else:
        mask, seconds = calibrated_mask(model, ctx.stage_config, ctx.config["seed"], f"stages.{ctx.name}")
        metrics["derivation_seconds"] = seconds
        if selection == "spectral":
            metrics["library_size"] = float(library.insert(LibraryEntry(ctx.code.name, target, mask)))
        mlflow.set_tags({"sap_decision": "derive", "sap_nearest_code": found.entry.code if found.entry else ""})
    if selection == "random":
        mask = random_mask_like(mask, int(st["random_seed"]))
    mlflow.set_tags({"sap_selection": selection})
    pruned = apply_mask(copy.deepcopy(model), mask)
    metrics |= {f"{k}_full": v for k, v in network_size(model, ctx.code.n).items()}
    metrics |= {f"{k}_pruned": v for k, v in network_size(pruned, ctx.code.n).items()}
    mask_path = ctx.out_dir / "mask.json"
    mask.to_json(mask_path)
    torch.save(dict(zip(("heads", "channels"), mask.as_tensors())), ctx.out_dir / "mask.pt")
    net_config = {**read_checkpoint(checkpoint)["hyper_parameters"]["net_config"], "unit_mask": json.loads(mask_path.read_text())}
    model_path = save_decoder(pruned, net_config, ctx.code.name, ctx.out_dir / "pruned.ckpt")
    mlflow.log_artifact(str(mask_path))
    if library.path.is_file():
        versioned = ctx.out_dir / f"library-v{len(library.entries())}.json"
        versioned.write_text(library.path.read_text())
        mlflow.log_artifact(str(versioned), artifact_path="sap_library")
    mlflow.log_metrics(metrics)
    state = {"library": str(library.path)} if library.path.is_file() else {}  # rebuilt if someone deletes it
    return StageResult(outputs={"checkpoint": str(model_path), "mask": str(mask_path), "teacher": checkpoint}, metrics=metrics,
                       state=state)
