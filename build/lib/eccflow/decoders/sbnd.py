"""Syndrome-based neural decoder (SBND) for BICM (seed 003, after Bennatan et al.).

Notation (LLR sign convention: positive = bit 0): channel LLRs L (B, n), hard decisions y_b = 1[L < 0],
reliabilities |L|, syndrome s = y_b H^T mod 2 (one entry per stored row of H, m = n - k for a full-rank H).
Theorem 1 of the paper makes y_b = c XOR z with a binary noise z independent of c (per label position),
and Theorem 2 makes (|L|, s) sufficient statistics for z. The estimator F maps the input
h = [|L|, 1 - 2 s] (size n + m = 2n - k) to flip logits f:

* ``output=codeword``: f (B, n) estimates z; decision c_hat = y_b XOR 1[f > 0]; BCE target y_b XOR c.
* ``output=message`` (message-wise, eq. (9)-(10)): with a pseudo-inverse G^+ (n x k, G G^+ = I_k over GF(2)),
  y_b G^+ = u XOR z G^+, so f (B, k) estimates z_u = z G^+; u_hat = y_b G^+ XOR 1[f > 0], c_hat = u_hat G.
  BCE target y_b G^+ XOR c G^+. G may be systematic (G^+ picks the information set) or not (any full-rank
  generator of the code: ``generator=scrambled`` uses T G with a random invertible T).

Estimators:

* ``gru``: stacked GRU (``layers`` cells of hidden size alpha (2n - k)) fed the same input h at each of
  ``time_steps`` steps, then a linear layer on the last step's output (the RNN of Bennatan et al.).
* ``transformer``: the ECCT backbone of :mod:`eccflow.decoders.transformer` (its token input is exactly
  [|L|, 1 - 2 s]; per-position embeddings, Tanner-graph mask), with its N -> n output projection
  replaced by N -> k for the message-wise output.

The decoder also records the BICM system it is trained for (modulation, order, Gray labelling, demapper,
interleaver seed) so that evaluation rebuilds the same channel; building it validates those settings.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from eccflow.channels import hard_decision
from eccflow.codes import Code, gf2
from eccflow.config import dataclass_from_dict
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError

ESTIMATORS = ("gru", "transformer")
OUTPUTS = ("codeword", "message")
GENERATORS = ("systematic", "scrambled")
TRANSFORMER_DEFAULTS: dict[str, Any] = {"layers": 2, "d_model": 32, "heads": 8, "d_ff": 0, "max_distance": 2,
                                        "norm": "pre", "activation": "gelu", "dropout": 0.0}


@dataclass(frozen=True)
class SBNDConfig:
    """The ``decoder:`` block of ``family: sbnd`` (see ``eccflow/conf/decoders/sbnd.yaml``)."""

    estimator: str = "gru"
    output: str = "message"
    generator: str = "systematic"
    generator_seed: int = 0
    magnitude: str = "normalized"  # |L| / frame mean |L| (normalized) or |L| (raw)
    # the BICM system the model is trained for (evaluation rebuilds it)
    channel: str = "bicm"
    modulation: str = "qam"
    order: int = 16
    labelling: str = "gray"
    demapper: str = "exact"
    interleaver_seed: int = 0
    # GRU estimator: hidden size alpha (2n - k), `layers` stacked cells, `time_steps` repetitions of the input
    gru: dict[str, int] = field(default_factory=lambda: {"alpha": 2, "layers": 3, "time_steps": 5})
    # transformer estimator (ECCT backbone keys)
    transformer: dict[str, Any] = field(default_factory=lambda: dict(TRANSFORMER_DEFAULTS))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SBNDConfig":
        return dataclass_from_dict(cls, values, "sbnd decoder")

    def validate(self) -> None:
        for name, allowed in (("estimator", ESTIMATORS), ("output", OUTPUTS), ("generator", GENERATORS),
                              ("magnitude", ("normalized", "raw")), ("channel", ("bicm", "awgn"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"decoder.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.channel == "bicm":
            from eccflow.channels import make_constellation
            from eccflow.channels.modulation import parse_demapping

            make_constellation(self.modulation, self.order, self.labelling)  # power of two, Gray only
            parse_demapping(self.demapper)
        gru = {"alpha": 2, "layers": 3, "time_steps": 5, **self.gru}
        if sorted(gru) != ["alpha", "layers", "time_steps"]:
            raise ConfigError(f"decoder.gru takes alpha, layers, time_steps; got {sorted(self.gru)}")
        for key, value in gru.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"decoder.gru.{key} must be a positive integer, got {value!r}")
        extra = sorted(set(self.transformer) - set(TRANSFORMER_DEFAULTS))
        if extra:
            raise ConfigError(f"unknown decoder.transformer keys {extra}; known: {sorted(TRANSFORMER_DEFAULTS)}")

    @property
    def gru_settings(self) -> dict[str, int]:
        return {"alpha": 2, "layers": 3, "time_steps": 5, **self.gru}

    @property
    def transformer_settings(self) -> dict[str, Any]:
        return {**TRANSFORMER_DEFAULTS, **self.transformer}


def message_generator(code: Code, kind: str = "systematic", seed: int = 0) -> np.ndarray:
    """The k x n generator of the message-wise decoder: ``code.G`` (systematic on ``code.info_set``), or
    T G for a random invertible k x k T drawn from ``seed`` (a non-systematic generator of the same code)."""
    if kind == "systematic":
        return np.array(code.G, dtype=np.uint8)
    if kind != "scrambled":
        raise ConfigError(f"generator must be one of {list(GENERATORS)}, got {kind!r}")
    rng = np.random.default_rng(seed)
    while True:
        t = rng.integers(0, 2, (code.k, code.k), dtype=np.uint8)
        if gf2.rank(t) == code.k:
            return gf2.matmul(t, code.G)


class GRUEstimator(nn.Module):
    """Stacked GRU over ``time_steps`` copies of the input h (B, i), linear head on the last step: f (B, o)."""

    def __init__(self, inputs: int, outputs: int, hidden: int, layers: int, time_steps: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.rnn = nn.GRU(inputs, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        sequence = features.unsqueeze(1).expand(-1, self.time_steps, -1)
        states, _ = self.rnn(sequence)
        return self.head(states[:, -1])


class SBNDDecoder(nn.Module):
    """SBND of ``code``: ``forward(llr (B, n)) -> DecoderOutput``; :meth:`flip_logits` and :meth:`flip_target`
    for training."""

    def __init__(self, code: Code, config: SBNDConfig | dict[str, Any]) -> None:
        super().__init__()
        self.config = config if isinstance(config, SBNDConfig) else SBNDConfig.from_dict(config)
        cfg = self.config
        self.code, self.n, self.k, self.num_checks = code, code.n, code.k, code.num_checks
        self.register_buffer("H", torch.tensor(code.H, dtype=torch.float32), persistent=False)
        self.message_wise = cfg.output == "message"
        generator = message_generator(code, cfg.generator, cfg.generator_seed)
        self.register_buffer("G", torch.tensor(generator, dtype=torch.float32), persistent=False)
        # G^+ on the information set (G_S = I for the systematic G: the message is read off y_b; T^{-1} when
        # scrambled): the flip of message bit j then mixes as few channel bits as the generator allows
        pinv = gf2.right_inverse(generator, columns=code.info_set)
        self.register_buffer("G_pinv", torch.tensor(pinv, dtype=torch.float32), persistent=False)
        self.outputs = self.k if self.message_wise else self.n
        self.inputs = self.n + self.num_checks
        if cfg.estimator == "gru":
            g = cfg.gru_settings
            self.hidden = g["alpha"] * (2 * self.n - self.k)
            self.estimator: nn.Module = GRUEstimator(self.inputs, self.outputs, self.hidden, g["layers"],
                                                     g["time_steps"])
        else:
            from eccflow.decoders.transformer import TransformerDecoder

            backbone = TransformerDecoder(code, {**cfg.transformer_settings, "embedding": "position", "bias": "mask",
                                                 "output": "projection", "magnitude": cfg.magnitude})
            backbone.to_bits = nn.Linear(backbone.graph.tokens, self.outputs)  # N -> k (message) or n
            self.estimator = backbone

    def _check(self, llr: torch.Tensor) -> None:
        if llr.dim() != 2 or llr.shape[1] != self.n:
            raise ConfigError(f"this SBND decodes {self.code.name} (n = {self.n}); got LLRs of shape "
                              f"{tuple(llr.shape)} - a model is tied to the code length it was built for")

    def features(self, llr: torch.Tensor) -> torch.Tensor:
        """h = [|L| (or |L| / mean |L|), 1 - 2 s] (B, n + m), s = bin(L) H^T mod 2."""
        hard = hard_decision(llr)
        syndrome = torch.remainder(hard @ self.H.t(), 2.0)
        magnitude = llr.abs()
        if self.config.magnitude == "normalized":
            magnitude = magnitude / magnitude.mean(dim=1, keepdim=True).clamp_min(1e-9)
        return torch.cat([magnitude, 1.0 - 2.0 * syndrome], dim=1)

    def flip_logits(self, llr: torch.Tensor) -> torch.Tensor:
        """f (B, k) message-wise or (B, n) codeword-wise: log-odds that each hard-decided bit is flipped."""
        self._check(llr)
        if self.config.estimator == "gru":
            return self.estimator(self.features(llr))
        return self.estimator.logits(llr)

    def hard_bits(self, llr: torch.Tensor) -> torch.Tensor:
        """y_b (B, n), or its message y_b G^+ (B, k) for the message-wise output."""
        hard = hard_decision(llr)
        return torch.remainder(hard @ self.G_pinv, 2.0) if self.message_wise else hard

    def flip_target(self, llr: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """BCE target: y_b XOR c (codeword-wise) or y_b G^+ XOR c G^+ (message-wise), float 0/1."""
        self._check(llr)
        truth = torch.remainder(bits.to(llr.dtype) @ self.G_pinv, 2.0) if self.message_wise else bits.to(llr.dtype)
        return (self.hard_bits(llr) - truth).abs()

    def decide(self, llr: torch.Tensor, logits: torch.Tensor) -> DecoderOutput:
        """c_hat = y_b XOR 1[f > 0] (codeword-wise) or (y_b G^+ XOR 1[f > 0]) G (message-wise).

        Soft output (positive = bit 0): codeword-wise -sign(L) f as for ECCT; message-wise, |LLR(c_v)| is
        the min-sum estimate min_{j: G_jv = 1} |f_j| of the XOR of the message bits that form c_v.
        """
        flips = (logits > 0).to(llr.dtype)
        if not self.message_wise:
            bits = (self.hard_bits(llr) - flips).abs()
            return DecoderOutput(llr=(1.0 - 2.0 * bits) * logits.abs(), bits=bits)
        message = (self.hard_bits(llr) - flips).abs()
        bits = torch.remainder(message @ self.G, 2.0)
        support = self.G.t().bool()  # (n, k)
        magnitude = logits.abs().unsqueeze(1).masked_fill(~support, math.inf).amin(-1)  # (B, n)
        return DecoderOutput(llr=(1.0 - 2.0 * bits) * magnitude, bits=bits)

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        return self.decide(llr, self.flip_logits(llr))

    def flops_per_frame(self) -> int:
        """Multiply-adds x 2 per frame: syndrome (2 m n), message maps y_b G^+ and u_hat G (2 n k each, message-wise),
        GRU: T sum_l 6 h (i_l + h) (three gates) + head 2 h o; transformer: traced by torch's FlopCounterMode."""
        total = 2 * self.num_checks * self.n + (4 * self.n * self.k if self.message_wise else 0)
        if self.config.estimator == "gru":
            g, h = self.config.gru_settings, self.hidden
            per_step = 6 * h * (self.inputs + h) + (g["layers"] - 1) * 6 * h * (2 * h)
            return total + g["time_steps"] * per_step + 2 * h * self.outputs
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            self.estimator.logits(torch.ones(1, self.n, device=self.H.device))
        return total + int(counter.get_total_flops())

    def extra_repr(self) -> str:
        return f"code={self.code.name}, " + ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def gru_parameter_count(inputs: int, hidden: int, layers: int, outputs: int, bias_vectors: int = 2) -> int:
    """Weights of the GRU estimator, eq. (16) of the paper (Dey & Salem count per GRU layer, m inputs, h units):

        3 (h^2 + h m + h) per layer [one bias per gate], dense layer (h + 1) o;
        N = 3 (h^2 + h i + b h) + 3 (L - 1) (2 h^2 + b h) + (h + 1) o

    with i = 2n - k inputs and b bias vectors per gate: b = 1 in the paper, b = 2 in cuDNN / torch.nn.GRU
    (separate input and recurrent biases, 3 h L more weights).
    """
    if bias_vectors not in (1, 2):
        raise ConfigError(f"bias_vectors must be 1 (paper) or 2 (torch.nn.GRU), got {bias_vectors!r}")
    first = 3 * (hidden * hidden + hidden * inputs + bias_vectors * hidden)
    rest = 3 * (layers - 1) * (2 * hidden * hidden + bias_vectors * hidden)
    return first + rest + (hidden + 1) * outputs


def gru_parameter_approximation(n: int, k: int, alpha: int, layers: int) -> int:
    """Leading term of eq. (16), the paper's approximation (17): N ~ 3 (2L - 1) alpha^2 (2n - k)^2 (+ the
    input term 3 alpha (2n - k)^2), i.e. growth as (2n - k)^2 for fixed depth and alpha."""
    h, i = alpha * (2 * n - k), 2 * n - k
    return 3 * (2 * layers - 1) * h * h + 3 * h * i


def transformer_parameter_count(tokens: int, outputs: int, d_model: int, layers: int, d_ff: int) -> int:
    """Weights of the ECCT-backbone estimator (pre-LN blocks, dense masked attention, bias=mask):

        N = N_tok d [embedding] + L (4 d^2 + 4 d [Q, K, V, out] + 2 d d_ff + d_ff + d [FFN] + 4 d [2 LN])
            + 2 d [final LN] + (d + 1) [d -> 1] + (N_tok + 1) o [N_tok -> o]

    with N_tok = 2n - k tokens. As in the paper's eq. (18)-(19), the dominant term L (4 d^2 + 2 d d_ff)
    does not contain n or k.
    """
    block = 4 * d_model * d_model + 4 * d_model + 2 * d_model * d_ff + d_ff + d_model + 4 * d_model
    return tokens * d_model + layers * block + 2 * d_model + d_model + 1 + (tokens + 1) * outputs


def parameter_report(decoder: SBNDDecoder) -> dict[str, float]:
    """Measured weights of ``decoder`` next to the paper's formula for its estimator (and torch's)."""
    cfg, n, k = decoder.config, decoder.n, decoder.k
    measured = sum(p.numel() for p in decoder.parameters())
    report: dict[str, float] = {"params": float(measured), "inputs": float(decoder.inputs),
                                "outputs": float(decoder.outputs)}
    if cfg.estimator == "gru":
        g = cfg.gru_settings
        report.update(
            hidden=float(decoder.hidden),
            formula_torch=float(gru_parameter_count(decoder.inputs, decoder.hidden, g["layers"], decoder.outputs, 2)),
            formula_paper=float(gru_parameter_count(decoder.inputs, decoder.hidden, g["layers"], decoder.outputs, 1)),
            approximation_paper=float(gru_parameter_approximation(n, k, g["alpha"], g["layers"])),
        )
    else:
        t = cfg.transformer_settings
        d_ff = t["d_ff"] or 4 * t["d_model"]
        report.update(formula_torch=float(transformer_parameter_count(decoder.inputs, decoder.outputs, t["d_model"],
                                                                      t["layers"], d_ff)),
                      dominant=float(t["layers"] * (4 * t["d_model"] ** 2 + 2 * t["d_model"] * d_ff)))
    return report
