"""ECCT, FECCT and AECCT: transformer decoders over Tanner-graph tokens (one backbone, three presets).

Tokens (N = n + m, every stored row of H is a check token; LLR sign convention: positive = bit 0):

    h(llr) = [|llr_1| .. |llr_n|, 1 - 2 s_1 .. 1 - 2 s_m],  s = H bin(llr) mod 2,  bin(x) = 1[x < 0]

The ECCT paper feeds |y|; with ``magnitude=normalized`` (default) the magnitudes are |llr_v| divided by
their frame mean, i.e. |y_v| / mean |y|: O(1) like |y| and blind to the LLR scaling (``raw`` keeps
|llr|, whose O(10) values at high SNR swamp the residual stream and slow training markedly).
Token embedding x_i = h_i * e_i (e_i Xavier-initialised as in the reference ECCT) (+ spectral positional encoding), then ``layers`` encoder blocks with
code-aware attention (see :mod:`eccflow.nn.attention`), a final LayerNorm and an output head giving one
logit f_v per variable: the predicted multiplicative noise, i.e. the log-odds that the hard decision
of llr_v is wrong. Training target: bin(llr_v) XOR x_v. Decision x_hat = bin(llr) XOR 1[f > 0]; the
posterior LLR is -sign(llr_v) f_v.

Presets (``eccflow/conf/decoders/*.yaml``):

* ECCT (Choukroun & Wolf): ``embedding=position`` (one vector per token), ``bias=mask``,
  ``output=projection`` (d -> 1 per token, then N -> n), pre-LN, GELU.
* FECCT (universal): ``embedding=type`` (one vector per token type), ``bias=distance`` (learned per
  head and Tanner distance 0..D_max), ``output=shared`` (d -> 1 on variable tokens): no parameter
  depends on n, k or H, so one set of weights decodes any code.
* AECCT: ``rings=true`` (head-partitioned attention), ``spe_dim>0`` (Laplacian eigenvectors and
  eigenvalues of the Tanner graph, projected and concatenated to the token embedding), post-LN, ReLU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from eccflow.channels import hard_decision
from eccflow.codes import Code
from eccflow.codes.graph import tanner_distances
from eccflow.codes.spectra import laplacian_eigenpairs
from eccflow.config import dataclass_from_dict
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError
from eccflow.nn import AttentionBias, AttentionImpl, EncoderBlock
from eccflow.nn.fused_attention import build_error as fused_build_error
from eccflow.nn.fused_attention import kernel as fused_kernel
from eccflow.nn.ternary import SCALE_GRADS, ternary_factory


class Embedding(str, Enum):
    POSITION = "position"
    TYPE = "type"


class OutputHead(str, Enum):
    PROJECTION = "projection"
    SHARED = "shared"


# ``impl="auto"``: sparse attention only where the mask keeps few query-key pairs. Measured on the CPU
# (benchmarks/results/transformer_costs.md): sparse wins at 6.9% and 1.9% kept pairs (LDPC(648,486),
# NR5G n=1040: 1.8x, 2.0x) and loses at 36% and above (LDPC(121,60) 0.54x; BCH / polar 0.2-0.3x).
SPARSE_MAX_KEPT = 0.15
SPARSE_MIN_TOKENS = 256


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture hyper-parameters (the ``decoder:`` block of the config, minus family keys)."""

    layers: int = 2
    d_model: int = 32
    heads: int = 8
    d_ff: int = 0  # 0 -> 4 d_model
    embedding: str = "position"
    bias: str = "mask"
    max_distance: int = 2
    rings: bool = False
    spe_dim: int = 0
    spe_width: int = 0  # embedding channels for the spectral encoding; 0 -> d_model // 4 when spe_dim > 0
    norm: str = "pre"
    activation: str = "gelu"
    dropout: float = 0.0
    output: str = "projection"
    impl: str = "auto"
    magnitude: str = "normalized"  # normalized: |llr| / its frame mean (scale-free, ~|y|) | raw: |llr|
    quantization: str = "none"  # none | aap (ternary, learnable delta) | percentile (ablation: delta fixed at 1)
    quant_percentile: float = 0.5  # p of gamma = percentile(|W|, p)
    quant_scale_grad: str = "ste"  # ste | lsq: gradient of the ternary scale (eccflow.nn.ternary)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TransformerConfig":
        # unit_mask (a pruned backbone's kept heads and channels): applied by eccflow.lit.checkpoint.build_network
        return dataclass_from_dict(cls, values, "transformer decoder", ignored=("family", "name", "unit_mask"))

    def validate(self) -> None:
        if self.layers < 1 or self.d_model < 1 or self.heads < 1:
            raise ConfigError(f"layers, d_model and heads must be positive, got {self.layers}, {self.d_model}, {self.heads}")
        for name, enum in (("embedding", Embedding), ("bias", AttentionBias), ("output", OutputHead)):
            value = getattr(self, name)
            if value not in {e.value for e in enum}:
                raise ConfigError(f"decoder.{name} must be one of {[e.value for e in enum]}, got {value!r}")
        if self.magnitude not in ("normalized", "raw"):
            raise ConfigError(f"decoder.magnitude must be normalized or raw, got {self.magnitude!r}")
        if self.quantization not in ("none", "aap", "percentile"):
            raise ConfigError(f"decoder.quantization must be none, aap or percentile, got {self.quantization!r}")
        if self.quant_scale_grad not in SCALE_GRADS:
            raise ConfigError(f"decoder.quant_scale_grad must be one of {SCALE_GRADS}, got {self.quant_scale_grad!r}")
        if self.impl not in ("auto", *(e.value for e in AttentionImpl)):
            raise ConfigError(f"decoder.impl must be auto, dense, sparse or fused, got {self.impl!r}")
        if self.impl == AttentionImpl.FUSED.value and self.dropout:
            raise ConfigError("decoder.impl=fused has no attention dropout; use dropout: 0 or impl: dense")
        if self.spe_dim < 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"need spe_dim >= 0 and 0 <= dropout < 1, got {self.spe_dim}, {self.dropout}")
        if self.spe_dim and self.spe_channels >= self.d_model:
            raise ConfigError(f"spe_width ({self.spe_channels}) must be smaller than d_model ({self.d_model})")

    @property
    def spe_channels(self) -> int:
        return (self.spe_width or max(1, self.d_model // 4)) if self.spe_dim else 0

    @property
    def universal(self) -> bool:
        """True when no parameter depends on the code (FECCT)."""
        return self.embedding == Embedding.TYPE.value and self.output == OutputHead.SHARED.value


@lru_cache(maxsize=64)
def _structure(code: Code, max_distance: int, spe_dim: int) -> tuple[np.ndarray, np.ndarray | None]:
    distance = tanner_distances(code, max_distance)
    if not spe_dim:
        return distance, None
    tokens = code.n + code.num_checks
    count = min(spe_dim + 1, tokens)
    values, vectors = laplacian_eigenpairs(code, count, normalized=True)
    values, vectors = values[1:], vectors[:, 1:]  # drop the trivial eigenpair
    features = np.zeros((tokens, 2 * spe_dim), dtype=np.float32)
    features[:, : vectors.shape[1]] = vectors
    features[:, spe_dim: spe_dim + values.size] = values
    return distance, features


MAX_TOKENS = 12_000
"""Longest token sequence (n + m) the transformer decoders take: they keep dense (N, N) tables (capped distances,
per-head attention bias), about 6 GB at this length."""


class TokenGraph(nn.Module):
    """Per-code buffers the backbone reads: H (m, n), capped distances (N, N), spectral features."""

    def __init__(self, code: Code, max_distance: int, spe_dim: int = 0) -> None:
        super().__init__()
        if code.n + code.num_checks > MAX_TOKENS:
            raise ConfigError(f"code {code.name} has {code.n + code.num_checks:,} tokens (n + m); the transformer "
                              f"decoders keep dense N x N attention tables and take at most {MAX_TOKENS:,}")
        distance, spe = _structure(code, max_distance, spe_dim)
        self.code_name, self.n, self.num_checks = code.name, code.n, code.num_checks
        self.register_buffer("H", torch.tensor(code.H, dtype=torch.float32), persistent=False)
        self.register_buffer("distance", torch.as_tensor(distance, dtype=torch.long), persistent=False)
        self.register_buffer("spe", None if spe is None else torch.as_tensor(spe), persistent=False)
        self.kept_fraction = float((self.distance <= max_distance).float().mean())  # pairs the mask keeps

    @property
    def tokens(self) -> int:
        return self.n + self.num_checks


class TransformerDecoder(nn.Module):
    """ECCT / FECCT / AECCT decoder of ``code``. ``forward(llr (B, n)) -> DecoderOutput``.

    ``linear`` builds every linear layer of the blocks (``nn.Linear``; the QAT stage swaps in a
    ternary layer). For a universal model, :meth:`set_code` switches the code without touching
    parameters, and :meth:`logits` accepts any :class:`TokenGraph`.
    """

    def __init__(self, code: Code, config: TransformerConfig | dict[str, Any],
                 linear: Callable[[int, int], nn.Module] = nn.Linear) -> None:
        super().__init__()
        self.config = config if isinstance(config, TransformerConfig) else TransformerConfig.from_dict(config)
        cfg = self.config
        if cfg.quantization != "none" and linear is nn.Linear:
            linear = ternary_factory(cfg.quant_percentile, learn_delta=cfg.quantization == "aap",
                                     scale_grad=cfg.quant_scale_grad)
        self.code = code
        self.graph = TokenGraph(code, cfg.max_distance, cfg.spe_dim)
        width = cfg.d_model - cfg.spe_channels
        rows = self.graph.tokens if cfg.embedding == Embedding.POSITION.value else 2  # per token, or variable / check
        self.token_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(rows, width)))
        self.spe_projection = nn.Linear(2 * cfg.spe_dim, cfg.spe_channels) if cfg.spe_dim else None
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.d_model, cfg.heads, cfg.d_ff or 4 * cfg.d_model, cfg.norm, cfg.activation, cfg.bias,
                         cfg.max_distance, cfg.rings, cfg.dropout, linear)
            for _ in range(cfg.layers)
        )
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.to_scalar = nn.Linear(cfg.d_model, 1)
        self.to_bits = nn.Linear(self.graph.tokens, code.n) if cfg.output == OutputHead.PROJECTION.value else None

    def set_code(self, code: Code) -> None:
        """Decode ``code`` from now on (universal models only)."""
        if not self.config.universal and code.name != self.code.name:
            raise ConfigError(f"a {self.config.embedding}-embedding / {self.config.output}-output transformer is tied to "
                              f"{self.code.name}; only the universal (FECCT) preset can switch to {code.name}")
        device = self.token_embedding.device
        self.code, self.graph = code, TokenGraph(code, self.config.max_distance, self.config.spe_dim).to(device)

    def impl_for(self, graph: TokenGraph, llr: torch.Tensor) -> str:
        """The attention implementation for these inputs: the configured one, or for ``auto`` sparse on long
        sparse codes, else the fused CPU kernel where it applies (float32 on the CPU, no autocast, no
        attention dropout, not inside ``torch.compile``, an export or a TorchScript trace: the kernel is an
        opaque C call), else dense."""
        fusable = (llr.device.type == "cpu" and llr.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
                   and not torch.compiler.is_compiling() and not torch.jit.is_tracing())
        if self.config.impl == AttentionImpl.FUSED.value:
            if not fusable:
                raise ConfigError("decoder.impl=fused runs on float32 CPU inputs outside torch.compile and autocast; "
                                  f"got {llr.dtype} on {llr.device.type}; use impl: auto or dense")
            if fused_kernel() is None:
                raise ConfigError(f"decoder.impl=fused: {fused_build_error()}")
            return self.config.impl
        if self.config.impl != "auto":
            return self.config.impl
        if graph.tokens >= SPARSE_MIN_TOKENS and graph.kept_fraction <= SPARSE_MAX_KEPT:
            return AttentionImpl.SPARSE.value
        if fusable and not (self.training and self.config.dropout) and fused_kernel() is not None:
            return AttentionImpl.FUSED.value
        return AttentionImpl.DENSE.value

    def embed(self, llr: torch.Tensor, graph: TokenGraph) -> torch.Tensor:
        """Tokens (B, N, d_model) from channel LLRs (B, n)."""
        hard = hard_decision(llr)
        syndrome = torch.remainder(hard @ graph.H.t(), 2.0)
        magnitude = llr.abs()
        if self.config.magnitude == "normalized":  # |llr_v| / mean_u |llr_u| = |y_v| / mean_u |y_u|
            magnitude = magnitude / magnitude.mean(dim=1, keepdim=True).clamp_min(1e-9)
        h = torch.cat([magnitude, 1.0 - 2.0 * syndrome], dim=1)  # (B, N)
        if self.config.embedding == Embedding.POSITION.value:
            if self.token_embedding.shape[0] != graph.tokens:
                raise ConfigError(f"this ECCT has {self.token_embedding.shape[0]} token embeddings; "
                                  f"{graph.code_name} needs {graph.tokens}")
            vectors = self.token_embedding
        else:
            kinds = torch.cat([torch.zeros(graph.n, dtype=torch.long), torch.ones(graph.num_checks, dtype=torch.long)])
            vectors = self.token_embedding[kinds.to(llr.device)]
        x = h.unsqueeze(-1) * vectors
        if self.spe_projection is not None:
            spe = self.spe_projection(graph.spe).expand(llr.shape[0], -1, -1)
            x = torch.cat([x, spe], dim=-1)
        return x

    def logits(self, llr: torch.Tensor, graph: TokenGraph | None = None) -> torch.Tensor:
        """Noise logits f (B, n): log-odds that each hard decision is wrong."""
        graph = self.graph if graph is None else graph
        if llr.dim() != 2 or llr.shape[1] != graph.n:
            raise ConfigError(f"{graph.code_name}: expected LLRs of shape (B, {graph.n}), got {tuple(llr.shape)}")
        x = self.embed(llr, graph)
        impl = self.impl_for(graph, llr)
        for block in self.blocks:
            x = block(x, graph.distance, impl)
        scalars = self.to_scalar(self.final_norm(x)).squeeze(-1)  # (B, N)
        return self.to_bits(scalars) if self.to_bits is not None else scalars[:, : graph.n]

    def forward(self, llr: torch.Tensor, graph: TokenGraph | None = None) -> DecoderOutput:
        return decision(llr, self.logits(llr, graph))

    def extra_repr(self) -> str:
        return f"code={self.code.name}, " + ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def decision(llr: torch.Tensor, noise_logits: torch.Tensor) -> DecoderOutput:
    """x_hat = bin(llr) XOR 1[f > 0]; posterior LLR = -sign(llr) f (positive = bit 0)."""
    hard = llr < 0
    flip = noise_logits > 0
    sign = torch.where(hard, -1.0, 1.0).to(llr.dtype)
    return DecoderOutput(llr=-sign * noise_logits, bits=(hard ^ flip).to(llr.dtype))


def noise_target(llr: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """BCE target of the noise logits: 1 where the hard decision of ``llr`` disagrees with ``bits``."""
    return ((llr < 0).to(bits.dtype) - bits).abs()
