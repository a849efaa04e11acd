"""The universal FECCT backbone that ships with eccflow, and the format any exported backbone uses.

A backbone is two files side by side: ``<name>.ckpt``, the network weights in the checkpoint layout that
:func:`eccflow.lit.load_decoder` and fine-tuning read (``state_dict`` with ``net.`` keys, ``hyper_parameters``
with ``net_config``), and ``<name>.json``, its manifest: format version, SHA-256 and size of the weights file,
the network config, how it was trained (code mixture, held-out codes, steps, words, overrides) and the git commit
it was trained from. Every load checks the manifest's format version, the file's size and checksum, and that the
weights fit the network the manifest describes; any mismatch is an :class:`~eccflow.errors.EccflowError` naming
the file, never a silent fallback.

FECCT's parameters do not depend on n, k or H (Park et al., "Foundation model for error correction codes"), so
one backbone decodes any binary linear code: it is built for the target code's Tanner graph on load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eccflow.codes import Code
from eccflow.config import file_sha256
from eccflow.errors import EccflowError

FORMAT_VERSION = 1
SHIPPED = "universal_fecct"
MANIFEST_KEYS = ("format_version", "name", "weights", "sha256", "bytes", "net_config", "training", "commit")
RUNTIME_KEYS = ("impl",)  # decoder settings that choose how to compute, not what: free to differ from the manifest


@dataclass(frozen=True)
class Backbone:
    """A verified backbone: its weights file and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def net_config(self) -> dict[str, Any]:
        return dict(self.manifest["net_config"])

    def decoder(self, code: Code) -> nn.Module:
        """The backbone built for ``code``'s Tanner graph, weights loaded, in eval mode."""
        from eccflow.lit.families import build_network
        from eccflow.lit.checkpoint import load_weights

        net = build_network(code, self.net_config)
        try:
            load_weights(net, self.path)
        except EccflowError as error:
            raise EccflowError(f"{self.path} holds weights of another backbone version than its manifest "
                               f"describes: {error}") from None
        return net.eval()


def shipped_manifest(name: str = SHIPPED) -> Path:
    """Where the package keeps the manifest of backbone ``name``."""
    return Path(str(resources.files("eccflow.pretrained") / f"{name}.json"))


def resolve(weights: str | Path) -> Path:
    """A manifest path from a shipped backbone's name (``universal_fecct``) or a path to a manifest (``.json``)."""
    text = str(weights)
    if text.endswith(".json") or "/" in text:
        return Path(text)
    return shipped_manifest(text)


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    if not manifest_path.is_file():
        raise EccflowError(f"no backbone manifest {manifest_path}; shipped backbones: {sorted(_shipped_names())}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EccflowError(f"backbone manifest {manifest_path} is damaged ({error})") from None
    if not isinstance(manifest, dict) or any(k not in manifest for k in MANIFEST_KEYS):
        missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
        raise EccflowError(f"backbone manifest {manifest_path} is damaged: it lacks {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise EccflowError(f"backbone manifest {manifest_path} is format version {manifest['format_version']!r}; this "
                           f"eccflow reads version {FORMAT_VERSION}: use the eccflow release it was exported with")
    return manifest


def load_backbone(weights: str | Path = SHIPPED) -> Backbone:
    """The verified backbone ``weights`` (a shipped name or a manifest path).

    Raises an EccflowError naming the file when the manifest is missing, damaged or of another format version,
    or when the weights file is missing, truncated, corrupted or does not hold the manifest's network.
    """
    manifest_path = resolve(weights)
    manifest = read_manifest(manifest_path)
    path = manifest_path.parent / str(manifest["weights"])
    if not path.is_file():
        raise EccflowError(f"backbone weights {path} are missing (named by {manifest_path})")
    size = path.stat().st_size
    if size != manifest["bytes"]:
        raise EccflowError(f"backbone weights {path} are truncated or altered: {size} bytes, its manifest "
                           f"{manifest_path.name} says {manifest['bytes']}")
    digest = file_sha256(path)
    if digest != manifest["sha256"]:
        raise EccflowError(f"backbone weights {path} are corrupted: SHA-256 {digest[:16]}..., its manifest "
                           f"{manifest_path.name} says {str(manifest['sha256'])[:16]}...")
    from eccflow.lit.base import read_checkpoint

    stored = read_checkpoint(path)["hyper_parameters"].get("net_config")
    if stored != manifest["net_config"]:
        raise EccflowError(f"backbone weights {path} were trained as another backbone version ({stored}) than its "
                           f"manifest describes ({manifest['net_config']})")
    return Backbone(path=path, manifest=manifest)


def architecture_mismatch(decoder_config: dict[str, Any], backbone: Backbone) -> list[str]:
    """``key: config vs backbone`` for every architecture setting in which ``decoder_config`` differs."""
    return [f"decoder.{k}: {decoder_config.get(k)!r} vs {v!r}" for k, v in backbone.net_config.items()
            if k not in RUNTIME_KEYS and decoder_config.get(k) != v]


def export_backbone(checkpoint: str | Path, directory: str | Path, name: str, training: dict[str, Any],
                    commit: str) -> Backbone:
    """Write the network of a training checkpoint as backbone ``name`` (weights + manifest) into ``directory``.

    Only the network weights are kept (no optimiser state), as float32, so the file stays small.
    """
    from eccflow.lit.base import read_checkpoint
    from eccflow.lit.checkpoint import net_state, save_state

    ckpt = read_checkpoint(checkpoint)
    net_config = dict(ckpt["hyper_parameters"]["net_config"])
    state = {k: v.to(torch.float32) for k, v in net_state(ckpt).items()}
    if not state:
        raise EccflowError(f"checkpoint {checkpoint} holds no network weights (no 'net.' keys)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path, manifest_path = directory / f"{name}.ckpt", directory / f"{name}.json"
    save_state(state, net_config, ckpt["hyper_parameters"].get("code"), path)
    manifest = {"format_version": FORMAT_VERSION, "name": name, "weights": path.name, "sha256": file_sha256(path),
                "bytes": path.stat().st_size, "parameters": sum(v.numel() for v in state.values()),
                "net_config": net_config, "training": training, "commit": commit}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return load_backbone(manifest_path)


def _shipped_names() -> list[str]:
    folder = Path(str(resources.files("eccflow.pretrained")))
    return [p.stem for p in folder.glob("*.json")]
