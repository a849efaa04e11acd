"""SAP mask library: signatures, similarity, deterministic retrieval, atomic concurrent inserts, bad files."""
from __future__ import annotations

import json
import math
import multiprocessing as mp

import pytest

from eccflow.codes import get_code
from eccflow.compress.fisher import UnitMask
from eccflow.compress.sap import LibraryEntry, MaskLibrary, random_mask_like, signature, similarity
from eccflow.errors import ConfigError


def _mask(k: int) -> UnitMask:
    return UnitMask([[0, k % 4]], [[0, 1 + k]], 4, 32)


def test_signature_and_similarity():
    sig = signature(get_code("BCH_n63_k45"), 4)
    assert len(sig) == 4 and sig == sorted(sig, reverse=True)
    assert signature(get_code("BCH_n63_k45"), 2) == pytest.approx(sig[:2])
    assert similarity(sig, sig, 1.0) == 1.0
    assert similarity([3.0, 1.0], [0.0, 5.0], 2.0) == pytest.approx(math.exp(-5.0 / 2.0))
    with pytest.raises(ConfigError, match="1 to 4"):
        signature(get_code("BCH_n63_k45"), 5)
    with pytest.raises(ConfigError, match="T must be > 0"):
        similarity([1.0], [1.0], 0.0)


def test_retrieval_is_deterministic_and_thresholded(tmp_path):
    lib = MaskLibrary(tmp_path / "lib.json", "backbone-a")
    assert lib.retrieve([5.0, 2.0], tau=0.5, temperature=1.0).entry is None
    lib.insert(LibraryEntry("A", [5.0, 2.0, 1.0, 0.5], _mask(0)))
    lib.insert(LibraryEntry("B", [9.0, 4.0, 2.0, 1.0], _mask(1)))
    lib.insert(LibraryEntry("C", [5.0, 2.0, 1.0, 0.5], _mask(2)))  # same signature as A: A wins the tie
    hit = lib.retrieve([5.1, 2.0], tau=0.8, temperature=1.0)
    assert hit.entry.code == "A" and hit.reuse and hit.similarity == pytest.approx(math.exp(-0.1))
    miss = lib.retrieve([7.0, 3.0], tau=0.8, temperature=1.0)
    assert not miss.reuse and miss.entry.code in {"A", "B"}
    # one eigenvalue: B's first eigenvalue is nearer
    assert lib.retrieve([8.0, 0.0], tau=0.0, temperature=1.0, count=1).entry.code == "B"
    assert [lib.retrieve([5.1, 2.0], tau=0.8, temperature=1.0).entry.code for _ in range(3)] == ["A"] * 3
    with pytest.raises(ConfigError, match=r"tau must lie in \[0, 1\]"):
        lib.retrieve([5.0, 2.0], tau=1.5, temperature=1.0)


def test_mismatched_and_random_mask_controls(tmp_path):
    lib = MaskLibrary(tmp_path / "lib.json", "backbone-a")
    with pytest.raises(ConfigError, match="library .* is empty: the mismatched-mask arm"):
        lib.least_similar([5.0, 2.0], temperature=1.0)
    lib.insert(LibraryEntry("A", [5.0, 2.0, 1.0, 0.5], _mask(0)))
    lib.insert(LibraryEntry("B", [9.0, 4.0, 2.0, 1.0], _mask(1)))
    far = lib.least_similar([5.1, 2.0], temperature=1.0)
    assert far.entry.code == "B" and far.reuse and far.similarity < lib.retrieve([5.1, 2.0], 0.0, 1.0).similarity
    mask = UnitMask([[0, 3], [1, 2, 5]], [list(range(10)), list(range(20))], 8, 64)
    random = random_mask_like(mask, seed=7)
    assert [len(h) for h in random.heads] == [2, 3] and [len(c) for c in random.channels] == [10, 20]  # same FLOPs
    assert random == random_mask_like(mask, seed=7) and random != random_mask_like(mask, seed=8)
    assert random.channels != mask.channels and all(max(c) < 64 for c in random.channels)


def _insert_many(path: str, worker: int) -> None:
    lib = MaskLibrary(path, "backbone-a")
    for i in range(10):
        lib.insert(LibraryEntry(f"w{worker}-{i}", [float(worker), float(i)], _mask(i)))


def test_concurrent_inserts_lose_no_entry(tmp_path):
    path = str(tmp_path / "lib.json")
    procs = [mp.get_context("fork").Process(target=_insert_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    names = {e.code for e in MaskLibrary(path, "backbone-a").entries()}
    assert names == {f"w{w}-{i}" for w in range(3) for i in range(10)}


def test_damaged_or_foreign_library_is_a_clear_error_and_left_untouched(tmp_path):
    path = tmp_path / "lib.json"
    lib = MaskLibrary(path, "backbone-a")
    lib.insert(LibraryEntry("A", [5.0, 2.0], _mask(0)))
    text = path.read_text()
    with pytest.raises(ConfigError, match="belongs to backbone 'backbone-a'"):
        MaskLibrary(path, "backbone-b").entries()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ConfigError, match="truncated or corrupt"):
        lib.insert(LibraryEntry("B", [1.0, 1.0], _mask(1)))
    assert path.read_text() == text[: len(text) // 2]  # not overwritten
    path.write_text(json.dumps({"version": 99, "backbone": "backbone-a", "entries": []}))
    with pytest.raises(ConfigError, match="format version 99"):
        lib.entries()


def test_mask_analysis_end_to_end_from_the_cli(tmp_path, monkeypatch):
    import torch

    from eccflow.cli import main
    from eccflow.decoders.transformer import TransformerDecoder
    from eccflow.lit import save_decoder

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    torch.manual_seed(0)
    arch = dict(family="fecct", layers=1, d_model=16, heads=4, d_ff=16, embedding="type", bias="distance", output="shared")
    backbone = TransformerDecoder(get_code("BCH_n15_k7"), arch)
    path = save_decoder(backbone, arch, "BCH_n15_k7", tmp_path / "backbone.ckpt")
    out = tmp_path / "analysis"
    codes = ["BCH_n15_k7", "BCH_n15_k11", "POLAR_n16_k8", "BCH_n31_k16"]
    assert main(["sap-analysis", "--checkpoint", str(path), "--codes", *codes, "--frames", "32", "--ebn0", "5",
                 "--out", str(out)]) == 0
    report = json.loads((out / "mask_analysis.json").read_text())
    assert len(report["pairs"]) == 4 and all(len(p["jaccards"]) == 6 for p in report["pairs"])
    assert all(0 <= j <= 1 for j in report["pairs"][0]["jaccards"])
    assert [row["code"] for row in report["retrieval"]] == codes
    assert (out / "mask_overlap_vs_similarity.png").stat().st_size > 0
    assert main(["sap-analysis", "--checkpoint", str(path), "--codes", "BCH_n15_k7", "BCH_n15_k11"]) == 2
