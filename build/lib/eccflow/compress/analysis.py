"""Does spectral similarity predict mask similarity? (SAP paper, appendices H and I analogues.)

For every code of a set, a dedicated Fisher mask is derived on the same pretrained backbone. For every
pair of codes: similarity of their signatures vs Jaccard similarity of their masks, with the Pearson
correlation, for four signatures: the SAP signature (largest singular values of H), the Wasserstein
distance between variable-degree distributions, and the smallest Laplacian / normalised-Laplacian
eigenvalues. The retrieval table gives, per code and signature size 1..4, the nearest other code and
the Jaccard similarity of its mask with the code's own.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import pearsonr, wasserstein_distance

from eccflow.codes import Code
from eccflow.codes.spectra import laplacian_eigenpairs
from eccflow.compress.fisher import UnitMask
from eccflow.compress.sap import signature


def _laplacian_spectrum(normalized: bool) -> Callable[[Code], np.ndarray]:
    return lambda code: laplacian_eigenpairs(code, 5, normalized)[0][1:]


# name -> (per-code feature, distance between two features); features are computed once per code
SIGNATURES: dict[str, tuple[Callable[[Code], np.ndarray], Callable[[np.ndarray, np.ndarray], float]]] = {
    "sap (2 largest singular values)": (lambda code: np.asarray(signature(code, 2)), lambda a, b: float(np.linalg.norm(a - b))),
    "variable-degree Wasserstein": (lambda code: np.asarray(code.variable_degrees), lambda a, b: float(wasserstein_distance(a, b))),
    "Laplacian (4 smallest non-trivial)": (_laplacian_spectrum(False), lambda a, b: float(np.linalg.norm(a - b))),
    "normalised Laplacian (4 smallest non-trivial)": (_laplacian_spectrum(True), lambda a, b: float(np.linalg.norm(a - b))),
}


@dataclass
class PairAnalysis:
    name: str
    similarities: list[float]
    jaccards: list[float]
    pearson_r: float


def analyse(codes: list[Code], masks: dict[str, UnitMask], temperature: float = 1.0) -> tuple[list[PairAnalysis], list[dict]]:
    """Per-signature pair analysis and the 1..4-eigenvalue retrieval table."""
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]]
    jaccards = [masks[a.name].jaccard(masks[b.name]) for a, b in pairs]
    results = []
    for name, (feature, distance) in SIGNATURES.items():
        features = {c.name: feature(c) for c in codes}
        sims = [math.exp(-distance(features[a.name], features[b.name]) / temperature) for a, b in pairs]
        r = float(pearsonr(sims, jaccards).statistic) if len(pairs) > 2 and np.std(sims) > 0 else float("nan")
        results.append(PairAnalysis(name, sims, jaccards, r))
    retrieval = []
    signatures = {c.name: signature(c, 4) for c in codes}
    for code in codes:
        row = {"code": code.name}
        others = [c for c in codes if c.name != code.name]
        for count in range(1, 5):
            nearest = min(others, key=lambda c: np.linalg.norm(np.subtract(signatures[c.name][:count], signatures[code.name][:count])))
            row[f"nearest_{count}"] = nearest.name
            row[f"jaccard_{count}"] = masks[nearest.name].jaccard(masks[code.name])
        retrieval.append(row)
    return results, retrieval


def write_report(results: list[PairAnalysis], retrieval: list[dict], out_dir: str | Path) -> list[Path]:
    """Markdown + JSON report and one scatter PNG (similarity vs Jaccard, one panel per signature)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results):
        ax.scatter(res.similarities, res.jaccards, s=14)
        ax.set_title(f"{res.name}\nPearson r = {res.pearson_r:.2f}", fontsize=8)
        ax.set_xlabel("signature similarity exp(-d/T)")
        ax.set_ylabel("mask Jaccard similarity")
    fig.tight_layout()
    png = out / "mask_overlap_vs_similarity.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    lines = ["| signature | pairs | Pearson r (similarity vs Jaccard) |", "|---|---:|---:|"]
    lines += [f"| {r.name} | {len(r.jaccards)} | {r.pearson_r:.3f} |" for r in results]
    lines += ["", "| code | " + " | ".join(f"nearest ({k} eig.) | Jaccard" for k in range(1, 5)) + " |",
              "|---|" + "---|---:|" * 4]
    lines += ["| " + row["code"] + " | " + " | ".join(f"{row[f'nearest_{k}']} | {row[f'jaccard_{k}']:.3f}" for k in range(1, 5)) + " |"
              for row in retrieval]
    md = out / "mask_analysis.md"
    md.write_text("\n".join(lines) + "\n")
    js = out / "mask_analysis.json"
    js.write_text(json.dumps({"pairs": [r.__dict__ for r in results], "retrieval": retrieval}, indent=2))
    return [md, js, png]
