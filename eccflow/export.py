"""Export a trained decoder as one ONNX or TorchScript graph, checked against the eager decoder and timed beside it.

The exported graph maps channel LLRs (B, n) float32 (positive means bit 0) to hard decisions (B, n) uint8 and
posterior LLRs (B, n) float32, for any batch size B. Early stopping is off in it: dropping decoded words from
the batch is data-dependent control flow that neither exporter can trace, so every word runs all iterations
(the eager reference it is checked against runs the same way).

Families: BP / min-sum, neural BP, EW-GNN, ECCT, AECCT and FECCT export to both formats; so do the window
decoders and SBND, which are traced as any other module. ONNX needs the ``export`` extra (onnx, onnxscript,
onnxruntime); TorchScript needs nothing beyond torch.
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from eccflow.channels.words import bpsk_awgn_channel, draw_words
from eccflow.codes import Code, get_code
from eccflow.decoders.base import bits_and_llr
from eccflow.decoders.window import ChainDecoder, WindowDecoder
from eccflow.errors import ConfigError, EccflowError
from eccflow.eval.timing import alternating_medians
from eccflow.files import atomic_path, check_writable

FORMATS = ("onnx", "torchscript")
LLR_ATOL = 1e-4  # the smallest tolerance on posterior LLRs, for decoders whose float32 rounding is smaller still
# How much farther than eccflow's own float32 decoder from float64 another runtime's float32 may land. Sum-product
# in saturation (phi(x) = -ln tanh(x / 2) near x = 0) amplifies rounding, and ONNX Runtime's tanh is about ten
# times less accurate than torch's near 1: measured up to 4.1x on BP with 5 and 20 iterations, BCH(31,16) and
# LDPC(121,60), 3 to 6 dB (benchmarks/results/export.md), up to 7.3x over other seeds; transformers land within 1e-6.
ROUNDING_FACTOR = 8.0
ONNX_OPSET = 18  # ScatterElements with reduction="min" (the min-sum check rule)


class ExportedDecoder(nn.Module):
    """``decoder`` as LLRs (B, n) -> (bits (B, n) uint8, posterior LLRs (B, n) float32), early stopping off."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        decoder = ChainDecoder(decoder) if isinstance(decoder, WindowDecoder) else decoder  # a whole SC-LDPC chain
        self.decoder = copy.deepcopy(decoder).eval()
        for module in self.decoder.modules():
            if getattr(module, "early_stop", False):
                module.early_stop = False

    def forward(self, llr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bits, posterior = bits_and_llr(self.decoder(llr))
        return bits.to(torch.uint8), posterior.to(torch.float32)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how the exported graph compares with the eager decoder on channel words."""

    path: Path
    format: str
    file_bytes: int
    frames: int
    ebn0_db: float
    bits_agree: float  # fraction of the frames' bits on which exported and eager decisions agree
    max_llr_difference: float  # max |exported - eager| posterior LLR
    tolerance: float  # what that difference may reach: ROUNDING_FACTOR x the eager float32 decoder's own error
    eager_frames_per_s: float
    exported_frames_per_s: float

    def lines(self) -> list[str]:
        return [f"wrote {self.path} ({self.format}, {self.file_bytes / 1024:.1f} KiB)",
                f"checked on {self.frames} channel words at {self.ebn0_db:g} dB: bits agree on "
                f"{self.bits_agree:.6%}, max |posterior LLR difference| {self.max_llr_difference:.3g} "
                f"(tolerance {self.tolerance:.3g}: {ROUNDING_FACTOR:g}x the eager float32 decoder's error against float64)",
                f"one CPU thread, batch {self.frames}: eager {self.eager_frames_per_s:,.0f} frames/s, "
                f"exported {self.exported_frames_per_s:,.0f} frames/s "
                f"({self.exported_frames_per_s / self.eager_frames_per_s:.2f}x)"]


def load_model(model: str) -> tuple[nn.Module, Code]:
    """A decoder and its code from an MLflow model URI (``models:/NAME@ALIAS``, ``runs:/...``) or a checkpoint path."""
    if ":/" in model:
        from eccflow.track import load_model_uri

        decoder, code = load_model_uri(model)
        if code is None:
            raise ConfigError(f"{model}: its checkpoint does not name its code")
        return decoder, get_code(code)
    from eccflow.lit import load_decoder, read_checkpoint

    if not Path(model).is_file():
        raise ConfigError(f"--model {model!r}: neither a models:/ or runs:/ URI nor a checkpoint file")
    return load_decoder(model), get_code(read_checkpoint(model)["hyper_parameters"]["code"])


def channel_words(code: Code, frames: int, ebn0_db: float, seed: int) -> torch.Tensor:
    """Channel LLRs (frames, n) of random codewords (all-zero without a generator) over BPSK-AWGN."""
    generator = torch.Generator().manual_seed(seed)
    G = torch.as_tensor(code.G.astype("float32")) if code.G is not None else None
    words = draw_words(code, frames, "random" if G is not None else "zero", generator, G)
    return bpsk_awgn_channel(words, ebn0_db, code.rate, generator).float()


def float32_error(module: ExportedDecoder, llr: torch.Tensor, eager_llr: torch.Tensor) -> float:
    """max |posterior LLR in float32 - in float64| of the eager decoder on ``llr``: how far float32 rounding alone
    moves this decoder's output on these words (sum-product in saturation, phi(x) = -ln tanh(x / 2) near
    x = 0, amplifies rounding a lot). 0 when the decoder cannot run in float64."""
    try:
        wide = copy.deepcopy(module.decoder).double()
        with torch.no_grad():
            output = wide(llr.double())
    except (RuntimeError, TypeError):  # a float32-only kernel
        return 0.0
    return float((eager_llr.double() - bits_and_llr(output)[1]).abs().max())


def write_onnx(module: ExportedDecoder, example: torch.Tensor, out: Path) -> Callable[[torch.Tensor], tuple]:
    """Export ``module`` to ``out`` (batch dimension dynamic) and return a one-thread ONNX Runtime call of it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX export needs onnx, onnxscript and onnxruntime: pip install -e '.[export]'") from None
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")  # torchvision notices
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices from torch.export internals
            torch.onnx.export(module, (example,), str(out), dynamo=True, opset_version=ONNX_OPSET,
                              external_data=False, input_names=["llr"], output_names=["bits", "llr_posterior"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    except Exception as error:  # the exporter's own errors carry pages of trace: one line, the operator named
        first = next((line for line in str(error).splitlines() if "No ONNX function" in line or "Error" in line),
                     str(error).splitlines()[0] if str(error) else type(error).__name__)
        raise EccflowError(f"ONNX export of {type(module.decoder).__name__} failed: {first.strip()[:400]}") from None
    finally:
        registration.setLevel(level)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no constant-folding notices
    session = onnxruntime.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    return lambda llr: tuple(torch.from_numpy(a) for a in session.run(None, {"llr": llr.numpy()}))


def write_torchscript(module: ExportedDecoder, example: torch.Tensor, out: Path) -> Callable[[torch.Tensor], tuple]:
    """Trace ``module`` on ``example`` into ``out`` and return the reloaded traced module's call."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: shape checks traced as constants (n is fixed)
        traced = torch.jit.trace(module, (example,), check_trace=False)
    traced.save(str(out))
    loaded = torch.jit.load(str(out))
    return lambda llr: loaded(llr)


def export_decoder(decoder: nn.Module, code: Code, format: str, out: str | Path, frames: int = 1000,
                   ebn0_db: float = 4.0, seed: int = 0, repeats: int = 5) -> ExportReport:
    """Write ``decoder`` as ``format`` to ``out`` and check it: on ``frames`` channel words of ``code`` at
    ``ebn0_db`` (random codewords where the code has a generator), the exported posterior LLRs must lie
    within ``ROUNDING_FACTOR`` times the eager float32 decoder's own rounding error (:func:`float32_error`, at
    least ``LLR_ATOL``) of the eager ones, and the bits agree wherever the eager LLR is farther than that from 0;
    both are then timed on one CPU thread (median of ``repeats`` alternating runs)."""
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {FORMATS}, got {format!r}")
    if frames < 1 or repeats < 1:
        raise ConfigError(f"frames and repeats must be positive, got {frames} and {repeats}")
    out = check_writable(out, "--out")
    module = ExportedDecoder(decoder)
    llr = channel_words(code, frames, ebn0_db, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with atomic_path(out) as tmp:
            run = (write_onnx if format == "onnx" else write_torchscript)(module, llr[: min(frames, 8)], tmp)
            with torch.no_grad():
                eager_bits, eager_llr = module(llr)
                bits, posterior = run(llr)
            tolerance = max(LLR_ATOL, ROUNDING_FACTOR * float32_error(module, llr, eager_llr))
            agree = float((bits == eager_bits).float().mean())
            difference = float((posterior - eager_llr).abs().max())
            flipped_far_from_zero = bool(((bits != eager_bits) & (eager_llr.abs() > tolerance)).any())
            if difference > tolerance or flipped_far_from_zero:
                raise EccflowError(f"the exported {format} graph does not reproduce the decoder: bits agree on "
                                   f"{agree:.6%}, max |LLR difference| {difference:.3g} > tolerance "
                                   f"{tolerance:.3g}; nothing written")
            with torch.no_grad():
                eager_s, exported_s = alternating_medians([lambda: module(llr), lambda: run(llr)], repeats)
        size = out.stat().st_size
    finally:
        torch.set_num_threads(threads)
    return ExportReport(out, format, size, frames, ebn0_db, agree, difference, tolerance, frames / eager_s,
                        frames / exported_s)
