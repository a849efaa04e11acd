"""Monte-Carlo BER/FER estimation, one decoder or several decoders on the same channel words.

For each Eb/N0: draw words (random codewords u G, or the all-zero word), send them over the channel,
let every decoder decode the same channel LLRs, count errors over all n bits of each frame, and stop by a
named rule (:func:`stop_rule`). Each point is seeded from (seed, point index), so results are reproducible,
independent of the other points in the list and of which decoders are run: the same seed gives the same
words to every decoder and every rerun. The generator lives on the evaluation device, so a CPU and a CUDA
run of the same seed draw different words (each reproducible on its own device).

Intervals (:mod:`eccflow.eval.intervals`): BER frame-clustered (the frame is the sampling unit), FER
Wilson, and for decoder against baseline the paired intervals of the -ln(BER) and FER differences.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from eccflow.channels.words import Channel, bpsk_awgn_channel, draw_words
from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError
from eccflow.eval.intervals import (
    PairedDifference,
    Verdict,
    clustered_rate_interval,
    neg_ln,
    paired_fer_difference,
    paired_neg_ln_ber_difference,
    wilson_interval,
)

Decoder = Callable[[torch.Tensor], DecoderOutput]

QUOTABLE_FRAME_ERRORS = 100
"""A point resting on fewer frame errors is flagged, not quoted as a result."""


class Codewords(str, Enum):
    RANDOM = "random"
    ZERO = "zero"


@dataclass(frozen=True)
class StopRule:
    """When a Monte-Carlo point stops: every decoder has at least ``min_frame_errors`` frame errors and
    ``min_frames`` frames were drawn, or ``max_frames`` frames were drawn (``min_frame_errors=None``: always
    the whole budget)."""

    name: str
    min_frame_errors: int | None
    min_frames: int
    max_frames: int

    def done(self, frames: int, fewest_frame_errors: int) -> bool:
        if frames >= self.max_frames:
            return True
        if self.min_frame_errors is None:
            return False
        return fewest_frame_errors >= self.min_frame_errors and frames >= self.min_frames


STOP_RULES = ("paper", "strict", "budget", "errors")


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def stop_rule(name: str, max_frames: int, min_frame_errors: int = 100) -> StopRule:
    """A stop rule by name, capped at ``max_frames`` frames.

    * ``paper``: more than 100 frame errors and at least 10^5 frames (the ECCT / AECCT test loops);
    * ``strict``: at least 500 frame errors;
    * ``budget``: exactly ``max_frames`` frames;
    * ``errors``: at least ``min_frame_errors`` frame errors.
    """
    max_frames = _check_positive_int("max_frames", max_frames)
    if name == "paper":
        return StopRule("paper", QUOTABLE_FRAME_ERRORS + 1, 100_000, max_frames)
    if name == "strict":
        return StopRule("strict", 500, 1, max_frames)
    if name == "budget":
        return StopRule("budget", None, max_frames, max_frames)
    if name == "errors":
        return StopRule(f"errors>={_check_positive_int('min_frame_errors', min_frame_errors)}", int(min_frame_errors), 1,
                        max_frames)
    raise ConfigError(f"unknown stop rule {name!r}; choose one of {list(STOP_RULES)}")


@dataclass
class PointResult:
    """Error statistics of one decoder at one Eb/N0: BER interval frame-clustered, FER interval Wilson
    (95%); ``flagged`` when under 100 frame errors (not quotable)."""

    ebn0_db: float
    ber: float
    fer: float
    frames: int
    bit_errors: int
    frame_errors: int
    ber_ci95: tuple[float, float]
    fer_ci95: tuple[float, float]
    neg_ln_ber: float
    neg_ln_ber_ci95: tuple[float, float]
    seconds: float
    squared_bit_errors: int = 0
    bits_per_frame: int = 0
    stop_rule: str = ""
    flagged: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> "PointResult":
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in values.items() if k in known}
        for key in ("ber_ci95", "fer_ci95", "neg_ln_ber_ci95"):
            data[key] = tuple(math.inf if v is None else v for v in data[key])
        if data.get("neg_ln_ber") is None:
            data["neg_ln_ber"] = math.inf
        return cls(**data)


def point_from_counts(ebn0_db: float, frames: int, bits_per_frame: int, bit_errors: int, squared_bit_errors: int,
                      frame_errors: int, seconds: float = 0.0, rule: str = "") -> PointResult:
    """A :class:`PointResult` from the frame-level sufficient statistics."""
    ber = bit_errors / (frames * bits_per_frame) if frames else 0.0
    b_lo, b_hi = clustered_rate_interval(bit_errors, squared_bit_errors, frames, bits_per_frame)
    return PointResult(
        ebn0_db=ebn0_db, ber=ber, fer=frame_errors / frames if frames else 0.0, frames=frames, bit_errors=bit_errors,
        frame_errors=frame_errors, ber_ci95=(b_lo, b_hi), fer_ci95=wilson_interval(frame_errors, frames),
        neg_ln_ber=neg_ln(ber), neg_ln_ber_ci95=(neg_ln(b_hi), neg_ln(b_lo)), seconds=seconds,
        squared_bit_errors=squared_bit_errors, bits_per_frame=bits_per_frame, stop_rule=rule,
        flagged=frame_errors < QUOTABLE_FRAME_ERRORS)


@dataclass
class Evaluation:
    """Several decoders on the same words: ``curves[name]`` one :class:`PointResult` per Eb/N0, ``paired``
    one :class:`~eccflow.eval.intervals.PairedDifference` per (decoder, baseline, Eb/N0)."""

    code: str
    seed: int
    codewords: str
    stop_rule: str
    curves: dict[str, list[PointResult]]
    paired: list[PairedDifference] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"code": self.code, "seed": self.seed, "codewords": self.codewords, "stop_rule": self.stop_rule,
                "decoders": {k: [p.to_dict() for p in v] for k, v in self.curves.items()},
                "paired": [d.to_dict() for d in self.paired]}

    @classmethod
    def from_dict(cls, values: Mapping) -> "Evaluation":
        """Inverse of :meth:`to_dict` after a JSON round trip (None stands for a non-finite number)."""
        def difference(d: Mapping) -> PairedDifference:
            lo, hi = d["d_neg_ln_ber_ci95"]
            return PairedDifference(**{**d, "d_neg_ln_ber": math.nan if d["d_neg_ln_ber"] is None else d["d_neg_ln_ber"],
                                       "d_neg_ln_ber_ci95": (-math.inf if lo is None else lo, math.inf if hi is None else hi),
                                       "d_fer_ci95": tuple(d["d_fer_ci95"])})

        return cls(code=values["code"], seed=values["seed"], codewords=values["codewords"], stop_rule=values["stop_rule"],
                   curves={k: [PointResult.from_dict(p) for p in v] for k, v in values["decoders"].items()},
                   paired=[difference(d) for d in values["paired"]])


def validate_ebn0_list(ebn0_db: Sequence[float]) -> list[float]:
    """Eb/N0 values as floats; the list must be non-empty and finite."""
    values = [float(v) for v in ebn0_db]
    if not values:
        raise ConfigError("the Eb/N0 list is empty: give at least one value in dB, e.g. 4 5 6")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"Eb/N0 values must be finite numbers, got {values}")
    return values


class PairedCounts:
    """Frame-level sums of K decoders decoding the same frames: bit errors and frame errors per decoder, and the
    Gram matrices E^T E, F^T F of the per-frame bit-error counts E and frame-error indicators F (frames, K), all
    that the marginal and paired intervals need."""

    def __init__(self, decoders: int, device: str | torch.device = "cpu") -> None:
        self.frames = 0
        self.errors = torch.zeros(decoders, dtype=torch.float64, device=device)
        self.failures = torch.zeros(decoders, dtype=torch.float64, device=device)
        self.gram_e = torch.zeros(decoders, decoders, dtype=torch.float64, device=device)
        self.gram_f = torch.zeros(decoders, decoders, dtype=torch.float64, device=device)

    def update(self, per_frame_errors: list[torch.Tensor]) -> None:
        """Add a batch: one (B,) tensor of bit errors per frame for each decoder, in decoder order."""
        E = torch.stack([e.to(torch.float64) for e in per_frame_errors], dim=1)
        F = (E > 0).to(torch.float64)
        self.errors += E.sum(dim=0)
        self.failures += F.sum(dim=0)
        self.gram_e += E.T @ E
        self.gram_f += F.T @ F
        self.frames += E.shape[0]

    def fewest_frame_errors(self) -> int:
        return int(self.failures.min()) if self.frames else 0

    def differences(self, ebn0: float, names: list[str], pairs: Sequence[tuple[str, str]],
                    bits_per_frame: int) -> list[PairedDifference]:
        """The paired difference of every (decoder, baseline) in ``pairs``."""
        errors, failures, gram_e, gram_f = (t.cpu() for t in (self.errors, self.failures, self.gram_e, self.gram_f))
        out = []
        for decoder, baseline in pairs:
            a, b = names.index(decoder), names.index(baseline)
            both = int(gram_f[a, b])
            only_a, only_b = int(failures[a]) - both, int(failures[b]) - both
            d_fer, fer_ci = paired_fer_difference(both, only_a, only_b, self.frames)
            d_ber, ber_ci = paired_neg_ln_ber_difference(float(errors[a]), float(gram_e[a, a]), float(errors[b]),
                                                         float(gram_e[b, b]), float(gram_e[a, b]), self.frames,
                                                         bits_per_frame)
            out.append(PairedDifference(
                ebn0_db=ebn0, decoder=decoder, baseline=baseline, d_neg_ln_ber=d_ber, d_neg_ln_ber_ci95=ber_ci,
                ber_verdict=Verdict.of(*ber_ci), d_fer=d_fer, d_fer_ci95=fer_ci, fer_verdict=Verdict.of(*fer_ci),
                frames=self.frames, frames_only_decoder_failed=only_a, frames_only_baseline_failed=only_b))
        return out


@torch.no_grad()
def evaluate_paired(
    decoders: Mapping[str, Decoder],
    code: Code,
    ebn0_db: Sequence[float],
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    rule: str = "errors",
    min_frame_errors: int = 100,
    max_frames: int = 1_000_000,
    batch_size: int = 10_000,
    seed: int = 0,
    codewords: str | Codewords = Codewords.RANDOM,
    channel: Channel = bpsk_awgn_channel,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Evaluation:
    """Every decoder of ``decoders`` (name -> decoder) on the same words at each Eb/N0 (dB).

    ``pairs``: (decoder, baseline) names to compare, default every decoder against every one listed before
    it. The stop rule (``rule``, ``min_frame_errors``, ``max_frames``: :func:`stop_rule`) must hold for every
    decoder, so the strongest one sets the number of frames.
    """
    names = list(decoders)
    if not names:
        raise ConfigError("no decoder to evaluate")
    pairs = [(names[j], names[i]) for j in range(len(names)) for i in range(j)] if pairs is None else list(pairs)
    for a, b in pairs:
        if a not in decoders or b not in decoders or a == b:
            raise ConfigError(f"paired comparison ({a!r} vs {b!r}) needs two different decoders among {names}")
    points = validate_ebn0_list(ebn0_db)
    stop = stop_rule(rule, max_frames, min_frame_errors)
    batch_size = _check_positive_int("batch_size", batch_size)
    try:
        codewords = Codewords(codewords)
    except ValueError:
        raise ConfigError(f"codewords must be one of {[c.value for c in Codewords]}, got {codewords!r}") from None
    device = torch.device(device)
    G = torch.as_tensor(code.G.copy(), dtype=torch.float32, device=device) if codewords is Codewords.RANDOM else None
    K = len(names)
    curves: dict[str, list[PointResult]] = {name: [] for name in names}
    paired: list[PairedDifference] = []
    for index, ebn0 in enumerate(points):
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
        counts = PairedCounts(K, device)
        seconds = [0.0] * K
        bar = tqdm(total=stop.max_frames, desc=f"{code.name} {ebn0:g} dB", unit="fr", leave=False,
                   disable=not (progress and sys.stderr.isatty()))  # a log gets one line per point instead
        while not stop.done(counts.frames, counts.fewest_frame_errors()):
            batch = min(batch_size, stop.max_frames - counts.frames)
            bits = draw_words(code, batch, codewords.value, generator, G)
            llr = channel(bits, ebn0, code.rate, generator)
            per_frame = []
            for k, name in enumerate(names):
                start = time.perf_counter()
                decided = decoders[name](llr).bits.to(bits.dtype)
                per_frame.append((decided != bits).sum(dim=-1))
                seconds[k] += time.perf_counter() - start
            counts.update(per_frame)
            bar.update(batch)
            bar.set_postfix(frame_errors=counts.fewest_frame_errors())
        bar.close()
        for k, name in enumerate(names):
            curves[name].append(point_from_counts(ebn0, counts.frames, code.n, int(counts.errors[k]),
                                                  int(counts.gram_e[k, k]), int(counts.failures[k]), seconds[k],
                                                  stop.name))
        paired += counts.differences(ebn0, names, pairs, code.n)
        if progress and not sys.stderr.isatty():
            print(f"{code.name} {ebn0:g} dB: {counts.frames} frames, fewest frame errors {counts.fewest_frame_errors()}, "
                  f"{sum(seconds):.1f} s decoding", file=sys.stderr, flush=True)
    return Evaluation(code=code.name, seed=seed, codewords=codewords.value, stop_rule=stop.name, curves=curves,
                      paired=paired)


def evaluate(decoder: Decoder, code: Code, ebn0_db: Sequence[float], **kwargs) -> list[PointResult]:
    """BER/FER of one ``decoder`` on ``code`` at each Eb/N0 (dB); keywords as :func:`evaluate_paired`."""
    return evaluate_paired({"decoder": decoder}, code, ebn0_db, **kwargs).curves["decoder"]
