"""``eccflow export``: decoders as ONNX (run by ONNX Runtime) and TorchScript files that reproduce eccflow's own
outputs on the same LLRs, from a checkpoint or a registered model, with bad input refused before any work."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eccflow.cli import main
from eccflow.codes import get_code
from eccflow.config import compose
from eccflow.errors import EccflowError
from eccflow.export import ROUNDING_FACTOR, ExportedDecoder, channel_words, export_decoder, float32_error
from eccflow.lit import load_decoder, save_decoder
from eccflow.lit.families import build_network

CODE = "BCH_n15_k7"


def _checkpoint(folder: Path, pipeline: str, *overrides: str) -> Path:
    config = compose(CODE, pipeline, "quick", list(overrides))["decoder"]
    torch.manual_seed(0)
    return save_decoder(build_network(get_code(CODE), config), config, CODE, folder / f"{pipeline}.ckpt")


def _eager(checkpoint: Path, llr: torch.Tensor) -> tuple[ExportedDecoder, torch.Tensor, torch.Tensor]:
    module = ExportedDecoder(load_decoder(checkpoint))
    with torch.no_grad():
        bits, posterior = module(llr)
    return module, bits, posterior


@pytest.mark.parametrize("pipeline, overrides", [("neural_bp", ()), ("ecct", ("decoder.layers=1", "decoder.d_model=32"))])
def test_an_onnx_file_run_by_onnxruntime_matches_eccflow(pipeline, overrides, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra (pip install -e '.[export]')")
    checkpoint = _checkpoint(tmp_path, pipeline, *overrides)
    out = tmp_path / f"{pipeline}.onnx"
    assert main(["export", "--model", str(checkpoint), "--format", "onnx", "--out", str(out), "--frames", "300",
                 "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "KiB" in printed and "frames/s" in printed

    llr = channel_words(get_code(CODE), 500, 3.0, seed=11)  # other words than the command checked on
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["llr"]
    bits, posterior = (torch.from_numpy(a) for a in session.run(None, {"llr": llr.numpy()}))
    module, eager_bits, eager_llr = _eager(checkpoint, llr)
    assert bits.dtype == torch.uint8 and bits.shape == (500, 15)
    tolerance = max(1e-4, ROUNDING_FACTOR * float32_error(module, llr, eager_llr))
    assert float((posterior - eager_llr).abs().max()) <= tolerance
    assert torch.equal(bits[eager_llr.abs() > tolerance], eager_bits[eager_llr.abs() > tolerance])
    if pipeline == "ecct":  # no saturating sum-product: float32 agreement
        assert torch.allclose(posterior, eager_llr, rtol=1e-5, atol=1e-5) and torch.equal(bits, eager_bits)


def test_a_torchscript_file_reproduces_a_registered_decoder(tmp_path, isolated_mlflow):
    import mlflow

    from eccflow.track import pipeline_run, register_checkpoint

    checkpoint = _checkpoint(tmp_path, "neural_bp")
    with pipeline_run("registry", "export"):
        registered = register_checkpoint(checkpoint, "nbp", CODE, {"neg_ln_ber_5dB": 5.0}, "neg_ln_ber_5dB",
                                         loader="eccflow.lit:load_decoder")
    out = tmp_path / "nbp.pt"
    assert main(["export", "--model", f"models:/{registered.name}@champion", "--format", "torchscript",
                 "--out", str(out), "--frames", "200", "--repeats", "1"]) == 0
    llr = channel_words(get_code(CODE), 300, 4.0, seed=5)
    bits, posterior = torch.jit.load(str(out))(llr)  # another batch size than the trace
    _, eager_bits, eager_llr = _eager(checkpoint, llr)
    assert torch.equal(bits, eager_bits.to(torch.uint8)) and torch.equal(posterior, eager_llr)
    assert mlflow.get_tracking_uri().startswith("sqlite")


def test_an_export_that_does_not_reproduce_the_decoder_writes_nothing(tmp_path, monkeypatch):
    import eccflow.export as export

    def flipping(module, example, out):  # an exporter that loses a sign
        out.write_bytes(b"graph")
        return lambda llr: tuple(t.clone() for t in module(llr * torch.tensor([-1.0] + [1.0] * (llr.shape[1] - 1))))

    monkeypatch.setattr(export, "write_torchscript", flipping)
    out = tmp_path / "bad.pt"
    with pytest.raises(EccflowError, match="does not reproduce the decoder"):
        export_decoder(load_decoder(_checkpoint(tmp_path, "neural_bp")), get_code(CODE), "torchscript", out, frames=100)
    assert not out.exists() and not list(tmp_path.glob(".bad*"))


@pytest.mark.parametrize("arguments, message", [
    (["--model", "missing.ckpt", "--format", "onnx"], "neither a models:/ or runs:/ URI nor a checkpoint file"),
    (["--model", "MODEL", "--format", "onnx", "--ebn0", "nan"], "--ebn0"),
    (["--model", "MODEL", "--format", "torchscript", "--frames", "0"], "frames and repeats must be positive"),
    (["--model", "models:/eccflow-none-BCH_n15_k7@champion", "--format", "onnx"], "models:/eccflow-none"),
])
def test_bad_export_input_is_one_line(arguments, message, tmp_path, capsys, isolated_mlflow):
    checkpoint = _checkpoint(tmp_path, "neural_bp")
    arguments = [str(checkpoint) if a == "MODEL" else a for a in arguments]
    capsys.readouterr()  # the store's creation notices
    assert main(["export", *arguments, "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_an_unwritable_out_fails_before_loading(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["export", "--model", str(tmp_path / "never-read.ckpt"), "--format", "onnx",
                 "--out", str(blocked / "x.onnx")]) == 2
    assert "--out" in capsys.readouterr().err


def test_early_stopping_is_off_in_the_exported_graph():
    from eccflow.decoders.message_passing import BeliefPropagationDecoder

    decoder = BeliefPropagationDecoder(get_code(CODE), iterations=5, early_stop=True)
    module = ExportedDecoder(decoder)
    assert decoder.early_stop and not module.decoder.early_stop  # the caller's decoder is left as it was
    llr = channel_words(get_code(CODE), 64, 2.0, seed=3)
    with torch.no_grad():
        _, posterior = module(llr)
        full = BeliefPropagationDecoder(get_code(CODE), iterations=5, early_stop=False)(llr).llr
    assert np.array_equal(posterior.numpy(), full.numpy())
