"""Hard-decision flip probabilities of a Gray constellation per label position (seed 003, Theorem 1).

For label position j (MSB first) and transmitted bit value x in {0, 1}, the flip probability is
p_j(x) = P(bin(LLR_j) != b_j | b_j = x), bin(L) = 1[L < 0]. Theorem 1 says the hard decision of each bit-LLR
is a binary symmetric channel: the flip z_j = bin(LLR_j) XOR b_j is independent of b_j, i.e.
p_j(0) = p_j(1) (exactly for 8-PSK Gray at every SNR; for 16-QAM Gray above a moderate SNR: at low SNR the
inner/outer bits flip with different probabilities depending on which ring was sent). The marginal p_j
differs between positions (e.g. p_LSB ~ 2 p_MSB at high SNR for both constellations: the Gray LSB changes
across twice as many decision boundaries); the random interleaver spreads those positions over the codeword.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from eccflow.channels import Constellation, complex_awgn
from eccflow.channels.modulation import parse_demapping
from eccflow.errors import ConfigError
from eccflow.eval.metrics import wilson_interval


@dataclass
class LabelFlipStatistics:
    """Flip counts per label position j (b positions) and per sent bit value x, at one Es/N0.

    ``flips[j][x]`` / ``trials[j][x]``: hard-decision errors and symbols with b_j = x.
    """

    es_n0_db: float
    flips: list[list[int]]
    trials: list[list[int]]

    def probability(self, position: int, bit: int | None = None) -> float:
        """p_j(x), or the marginal p_j when ``bit`` is None."""
        flips, trials = self._counts(position, bit)
        return flips / trials

    def interval(self, position: int, bit: int | None = None) -> tuple[float, float]:
        """Wilson 95% interval of p_j(x) (or of p_j)."""
        return wilson_interval(*self._counts(position, bit))

    def _counts(self, position: int, bit: int | None) -> tuple[int, int]:
        if bit is None:
            return sum(self.flips[position]), sum(self.trials[position])
        return self.flips[position][bit], self.trials[position][bit]

    def symmetric(self, position: int) -> bool:
        """True when the Wilson intervals of p_j(0) and p_j(1) overlap (no evidence against the BSC)."""
        lo0, hi0 = self.interval(position, 0)
        lo1, hi1 = self.interval(position, 1)
        return lo0 <= hi1 and lo1 <= hi0

    def to_dict(self) -> dict:
        b = len(self.flips)
        return {**asdict(self), "p": [self.probability(j) for j in range(b)],
                "p_given_0": [self.probability(j, 0) for j in range(b)],
                "p_given_1": [self.probability(j, 1) for j in range(b)]}


@torch.no_grad()
def label_flip_statistics(constellation: Constellation, es_n0_db: float, symbols: int = 200_000,
                          demapping: str = "exact", seed: int = 0) -> LabelFlipStatistics:
    """Send ``symbols`` uniform random labels over complex AWGN with N0 = 10^(-Es/N0 / 10) (E_s = 1), demap
    (exact or max-log), and count the hard-decision flips per label position and sent bit value."""
    if isinstance(symbols, bool) or not isinstance(symbols, int) or symbols < 1:
        raise ConfigError(f"symbols must be a positive integer, got {symbols!r}")
    method = parse_demapping(demapping)
    b = constellation.bits_per_symbol
    generator = torch.Generator().manual_seed(seed)
    n0 = 10.0 ** (-float(es_n0_db) / 10.0)
    flips = torch.zeros(b, 2, dtype=torch.long)
    trials = torch.zeros(b, 2, dtype=torch.long)
    chunk = 100_000
    for start in range(0, symbols, chunk):
        count = min(chunk, symbols - start)
        bits = torch.randint(0, 2, (count, b), generator=generator)
        y = complex_awgn(constellation.map(bits.reshape(-1)), n0, generator)
        wrong = (constellation.demap(y, n0, method) < 0).long().reshape(count, b) != bits
        for x in (0, 1):
            sent = bits == x
            flips[:, x] += (wrong & sent).sum(0)
            trials[:, x] += sent.sum(0)
    return LabelFlipStatistics(float(es_n0_db), flips.tolist(), trials.tolist())
