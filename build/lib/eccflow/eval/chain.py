"""Monte-Carlo evaluation of a chain decoder: BER / FER over the chain, per-window block error rate and the
error-propagation probability P(window t fails | window t - 1 failed). Intervals 95%: BER frame-clustered
(:func:`~eccflow.eval.intervals.clustered_rate_interval`, the chain is the sampling unit), FER, per-window BLER
and EP probability Wilson.

A window fails when any of its target bits is wrong. The EP probability pools every pair of consecutive
windows of every frame: (pairs where both failed) / (pairs where the first failed). Stops after
``min_frame_errors`` chain errors or ``max_frames`` frames. Several decoders decode the same chains
(:func:`evaluate_chains_paired`), with paired differences as in :mod:`eccflow.eval.montecarlo`. The EP interval treats the pairs as independent, which
holds only approximately (pairs of one chain share a window).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from eccflow.channels.words import bpsk_awgn_channel, draw_words
from eccflow.decoders.window import ChainDecoder
from eccflow.eval.intervals import clustered_rate_interval, wilson_interval
from eccflow.errors import ConfigError
from eccflow.eval.montecarlo import QUOTABLE_FRAME_ERRORS, PairedCounts, stop_rule, validate_ebn0_list


@dataclass
class ChainPoint:
    ebn0_db: float
    frames: int
    bit_errors: int
    frame_errors: int
    ber: float
    fer: float
    ber_ci95: tuple[float, float]
    fer_ci95: tuple[float, float]
    ep_events: int  # pairs (t - 1 failed, t failed)
    ep_trials: int  # pairs where t - 1 failed
    ep_probability: float
    ep_ci95: tuple[float, float]
    switched: float  # fraction of windows decoded with the resilient set (adaptive decoders)
    window_bler: list[float] = field(default_factory=list)
    window_bler_ci95: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0
    flagged: bool = False  # under 100 chain errors: not quotable

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate_chains_paired(decoders: dict[str, ChainDecoder], ebn0_db: list[float], min_frame_errors: int = 100,
                           max_frames: int = 100_000, batch_size: int = 1000, seed: int = 0, codewords: str = "zero",
                           pairs: list[tuple[str, str]] | None = None) -> tuple[dict[str, list[ChainPoint]], list]:
    """Chain statistics of every decoder on the same chains at each Eb/N0 (the genie detector sees the
    transmitted bits), and the paired FER / -ln(BER) differences of every (decoder, baseline) in ``pairs``
    (default: every decoder against every one listed before it). A point stops when every decoder has
    ``min_frame_errors`` chain errors, or after ``max_frames`` chains."""
    names = list(decoders)
    if not names:
        raise ConfigError("no chain decoder to evaluate")
    pairs = [(names[j], names[i]) for j in range(len(names)) for i in range(j)] if pairs is None else list(pairs)
    code = decoders[names[0]].code
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None
    targets = {name: d.target_masks() for name, d in decoders.items()}
    K = len(names)
    stop = stop_rule("errors", max_frames, min_frame_errors)
    curves: dict[str, list[ChainPoint]] = {name: [] for name in names}
    paired = []
    for index, ebn0 in enumerate(validate_ebn0_list(ebn0_db)):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        counts = PairedCounts(K)
        stats = {name: {"ep_events": 0, "ep_trials": 0, "switched": 0.0, "seconds": 0.0,
                        "window_fail": torch.zeros(len(targets[name]), dtype=torch.long)} for name in names}
        while not stop.done(counts.frames, counts.fewest_frame_errors()):
            count = min(batch_size, stop.max_frames - counts.frames)
            bits = draw_words(code, count, codewords, generator, G)
            llr = bpsk_awgn_channel(bits, ebn0, code.rate, generator)
            per_frame = []
            for name in names:
                decoder, st, start = decoders[name], stats[name], time.perf_counter()
                decoder.truth = bits
                wrong = decoder(llr).bits != bits
                decoder.truth = None
                fail = torch.stack([wrong[:, t].any(dim=1) for t in targets[name]], dim=1)  # (B, windows)
                st["window_fail"] += fail.sum(dim=0)
                st["ep_trials"] += int(fail[:, :-1].sum())
                st["ep_events"] += int((fail[:, :-1] & fail[:, 1:]).sum())
                if decoder.switched is not None:
                    st["switched"] += float(decoder.switched.float().sum())
                per_frame.append(wrong.sum(dim=1))
                st["seconds"] += time.perf_counter() - start
            counts.update(per_frame)
        frames = counts.frames
        for k, name in enumerate(names):
            st = stats[name]
            bit_errors, frame_errors = int(counts.errors[k]), int(counts.failures[k])
            ep_trials, ep_events = st["ep_trials"], st["ep_events"]
            curves[name].append(ChainPoint(
                ebn0_db=ebn0, frames=frames, bit_errors=bit_errors, frame_errors=frame_errors,
                ber=bit_errors / (frames * code.n), fer=frame_errors / frames,
                ber_ci95=clustered_rate_interval(bit_errors, int(counts.gram_e[k, k]), frames, code.n),
                fer_ci95=wilson_interval(frame_errors, frames), ep_events=ep_events, ep_trials=ep_trials,
                ep_probability=ep_events / ep_trials if ep_trials else float("nan"),
                ep_ci95=wilson_interval(ep_events, ep_trials) if ep_trials else (float("nan"), float("nan")),
                switched=st["switched"] / (frames * len(targets[name])),
                window_bler=(st["window_fail"].float() / frames).tolist(),
                window_bler_ci95=[wilson_interval(int(f), frames) for f in st["window_fail"]],
                flagged=frame_errors < QUOTABLE_FRAME_ERRORS, seconds=st["seconds"]))
        paired += counts.differences(ebn0, names, pairs, code.n)
    return curves, paired


def evaluate_chain(decoder: ChainDecoder, ebn0_db: list[float], min_frame_errors: int = 100, max_frames: int = 100_000,
                   batch_size: int = 1000, seed: int = 0, codewords: str = "zero") -> list[ChainPoint]:
    """Chain statistics of one ``decoder`` at each Eb/N0 (see :func:`evaluate_chains_paired`)."""
    curves, _ = evaluate_chains_paired({"decoder": decoder}, ebn0_db, min_frame_errors, max_frames, batch_size, seed,
                                       codewords)
    return curves["decoder"]


def chain_table(curves: dict[str, list[ChainPoint]]) -> str:
    """Markdown: FER, BER and EP probability per decoder and Eb/N0."""
    lines = ["| decoder | Eb/N0 (dB) | FER [95% CI] | BER [95% CI] | EP probability [95% CI] | frames | frame errors |",
             "|---|---:|---|---|---|---:|---:|"]
    for name, points in curves.items():
        for p in points:
            lines.append(f"| {name} | {p.ebn0_db:g} | {p.fer:.3e} [{p.fer_ci95[0]:.2e}, {p.fer_ci95[1]:.2e}] | "
                         f"{p.ber:.2e} [{p.ber_ci95[0]:.2e}, {p.ber_ci95[1]:.2e}] | {p.ep_probability:.3f} [{p.ep_ci95[0]:.3f}, {p.ep_ci95[1]:.3f}] | {p.frames} | "
                         f"{p.frame_errors}{' (< 100, flagged)' if p.flagged else ''} |")
    return "\n".join(lines) + "\n"
