"""The neural window decoder's training recipe (Buchberger et al.): one window of an SC-LDPC chain, trained on
active-learning samples (or plain channel samples), the epoch picked by the NVE against the window decoder WD.
Used by the ``nwd`` stages and by benchmarks alike."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eccflow.channels.words import bpsk_awgn_channel
from eccflow.codes import Code
from eccflow.data import ActiveErrorDataModule, ActiveErrorSampler, ActiveYieldLogger, AWGNDataModule
from eccflow.decoders.window import WindowDecoder
from eccflow.lit import load_decoder
from eccflow.lit.families import build_network
from eccflow.lit.window import WindowLitModule
from eccflow.train import fit


def _chain_rate_channel(rate: float):
    """BPSK-AWGN at the chain's rate (a window's own sub-matrix has another rate)."""
    return lambda bits, ebn0, _rate, generator: bpsk_awgn_channel(bits, ebn0, rate, generator)


def train_window_decoder(code: Code, config: dict[str, Any], stage_name: str, out_dir: Path, logger: Any = False,
                         init_weights: torch.Tensor | None = None) -> tuple[Path, dict[str, float]]:
    """Train the NWD of ``config['decoder']`` under ``config['stages'][stage_name]`` on the independent window:
    active learning (or plain samples with ``active: false``), NVE against WD picks the epoch. Returns the
    selected checkpoint and the training metrics (usable outside a pipeline, e.g. by the ablation benchmark)."""
    st, d = config["stages"][stage_name], config["data"]
    net_config = {k: v for k, v in config["decoder"].items() if k != "wd_normalization"}
    net_config |= {"scope": st.get("scope") or net_config.get("scope", "target"), "damping": bool(st.get("damping", False))}
    net = build_network(code, net_config)
    if init_weights is not None:
        net.load_weight_set(init_weights)
    graph = net.graph
    channel = _chain_rate_channel(code.rate)
    val_ebn0 = [float(v) for v in d["val_ebn0_db"]]
    if st["active"]:
        sampler = ActiveErrorSampler(graph.active_code, d["train_ebn0_db"], int(st["frames_per_snr"]),
                                     max_candidates_per_snr=int(st["max_candidates_per_snr"]),
                                     candidate_batch_size=int(st["candidate_batch_size"]), channel=channel,
                                     seed=config["seed"],
                                     error_positions=graph.targets.tolist() if net.scope.value == "target" else None)
        datamodule = ActiveErrorDataModule(sampler, int(d["batch_size"]), val_ebn0_db=val_ebn0,
                                           val_frames=int(d["val_frames"]), val_batch_size=int(d["val_frames"]),
                                           passes=int(st["passes"]))
        callbacks = [ActiveYieldLogger()]
    else:  # ablation: plain channel samples, the same number of frames per epoch
        datamodule = AWGNDataModule(graph.active_code, [float(v) for v in d["train_ebn0_db"]], batch_size=int(d["batch_size"]),
                                    batches_per_epoch=int(st["frames_per_snr"]) * len(d["train_ebn0_db"]) * int(st["passes"])
                                    // int(d["batch_size"]),
                                    val_ebn0_db=val_ebn0, val_frames=int(d["val_frames"]), seed=config["seed"],
                                    channel=channel)
        callbacks = []
    wd = WindowDecoder(code, net.window, net.target, net.iterations, neural=False,
                       normalization=float(config["decoder"]["wd_normalization"]))
    lit = WindowLitModule(net, net_config, code.name, loss=st["loss"], damping_l1=float(st.get("damping_l1", 0.0)),
                          val_ebn0_db=val_ebn0, lr=float(st["lr"]), lr_min=float(st["lr_min"]), baseline={code.name: wd})
    model, metrics = fit(code, config, out_dir, logger=logger, stage=stage_name, lit_module=lit, datamodule=datamodule,
                         callbacks=callbacks, progress=False)
    trained = load_decoder(model)
    metrics |= {"stored_weights": float(trained.stored_weights),
                "weights_all_inclusive": float(trained.iterations * trained.weights.shape[1])}
    return model, metrics
