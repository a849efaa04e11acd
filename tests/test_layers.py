"""The package's import graph follows ARCHITECTURE.md: every import (top-level or inside a function) goes to the
same layer or a lower one, and no two subpackages import each other."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "eccflow"


def layers() -> dict[str, int]:
    block = re.search(r"```layers\n(.*?)```", (ROOT / "ARCHITECTURE.md").read_text(), re.S).group(1)
    table = {}
    for line in block.strip().splitlines():
        number, rest = line.split(maxsplit=1)
        names = re.match(r"([a-z_]+(?: [a-z_]+)*?)\s{2,}", rest).group(1).split()
        table.update({name: int(number) for name in names})
    return table


def unit(module: str) -> str:
    """``eccflow.data.awgn`` -> ``data``; ``eccflow.cli`` -> ``cli``; ``eccflow`` -> ``""``."""
    parts = [p for p in module.split(".") if p != "__init__"]
    return parts[1] if len(parts) > 1 else ""


def imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, file:line) for every import of an eccflow module."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        source = unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("eccflow.") and unit(name) != source:
                    found.append((source, unit(name), f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_subpackage_has_a_layer():
    table = layers()
    units = {unit(".".join(p.relative_to(ROOT).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")} - {""}
    assert units == set(table), f"in the package but not in ARCHITECTURE.md: {units - set(table)}; " \
                                f"listed but absent: {set(table) - units}"


def test_no_import_goes_up_a_layer():
    table = layers()
    upward = [f"{where}: {source} (layer {table[source]}) imports {target} (layer {table[target]})"
              for source, target, where in imports() if target and table[target] > table[source]]
    assert not upward, "\n".join(upward)


def test_no_two_subpackages_import_each_other():
    edges: dict[str, set[str]] = {}
    for source, target, _ in imports():
        if target:
            edges.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a, {b})})
    assert not cycles, f"import cycles between subpackages: {cycles}"


def test_no_stage_imports_another_stage():
    """Stages call library functions and log; what two stages share lives in the library."""
    stages = PACKAGE / "pipelines" / "stages"
    found = []
    for path in stages.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eccflow.pipelines.stages.") \
                    and path.name != "__init__.py":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert not found, "\n".join(found)
