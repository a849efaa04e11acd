"""Monte-Carlo evaluation of a chain decoder: BER / FER over the chain, per-window block error rate and the
error-propagation probability P(window t fails | window t - 1 failed). Intervals 95%: BER frame-clustered
(:func:`~eccflow.eval.intervals.clustered_rate_interval`, the chain is the sampling unit), FER, per-window BLER
and EP probability Wilson.

A window fails when any of its target bits is wrong. The EP probability pools every pair of consecutive
windows of every frame: (pairs where both failed) / (pairs where the first failed). Stops after
``min_frame_errors`` chain errors or ``max_frames`` frames. The EP interval treats the pairs as independent, which
holds only approximately (pairs of one chain share a window).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from eccflow.data.awgn import draw_words
from eccflow.decoders.window import ChainDecoder
from eccflow.eval.intervals import clustered_rate_interval, wilson_interval
from eccflow.eval.montecarlo import QUOTABLE_FRAME_ERRORS, bpsk_awgn_channel, validate_ebn0_list


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
def evaluate_chain(decoder: ChainDecoder, ebn0_db: list[float], min_frame_errors: int = 100, max_frames: int = 100_000,
                   batch_size: int = 1000, seed: int = 0, codewords: str = "zero") -> list[ChainPoint]:
    """Chain statistics of ``decoder`` at each Eb/N0 (the genie detector sees the transmitted bits)."""
    code = decoder.code
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32) if codewords == "random" else None
    targets = decoder.target_masks()
    points = []
    for index, ebn0 in enumerate(validate_ebn0_list(ebn0_db)):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        start = time.perf_counter()
        frames = bit_errors = squared_bit_errors = frame_errors = ep_events = ep_trials = 0
        switched = 0.0
        window_fail = torch.zeros(len(targets), dtype=torch.long)
        while frames < max_frames and frame_errors < min_frame_errors:
            count = min(batch_size, max_frames - frames)
            bits = draw_words(code, count, codewords, generator, G)
            decoder.truth = bits
            decided = decoder(bpsk_awgn_channel(bits, ebn0, code.rate, generator)).bits
            wrong = decided != bits
            fail = torch.stack([wrong[:, t].any(dim=1) for t in targets], dim=1)  # (B, windows)
            frames += count
            per_frame = wrong.sum(dim=1)
            bit_errors += int(per_frame.sum())
            squared_bit_errors += int((per_frame * per_frame).sum())
            frame_errors += int(wrong.any(dim=1).sum())
            window_fail += fail.sum(dim=0)
            ep_trials += int(fail[:, :-1].sum())
            ep_events += int((fail[:, :-1] & fail[:, 1:]).sum())
            if decoder.switched is not None:
                switched += float(decoder.switched.float().sum())
        decoder.truth = None
        ber = bit_errors / (frames * code.n)
        points.append(ChainPoint(
            ebn0_db=ebn0, frames=frames, bit_errors=bit_errors, frame_errors=frame_errors, ber=ber,
            fer=frame_errors / frames, ber_ci95=clustered_rate_interval(bit_errors, squared_bit_errors, frames, code.n),
            fer_ci95=wilson_interval(frame_errors, frames), ep_events=ep_events, ep_trials=ep_trials,
            ep_probability=ep_events / ep_trials if ep_trials else float("nan"),
            ep_ci95=wilson_interval(ep_events, ep_trials) if ep_trials else (float("nan"), float("nan")),
            switched=switched / (frames * len(targets)), window_bler=(window_fail.float() / frames).tolist(),
            window_bler_ci95=[wilson_interval(int(f), frames) for f in window_fail],
            flagged=frame_errors < QUOTABLE_FRAME_ERRORS, seconds=time.perf_counter() - start))
    return points


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
