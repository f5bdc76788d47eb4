import inspect

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from da_toolkit.cli import main
from da_toolkit.inference import export as export_module
from da_toolkit.inference.export import OnnxDepthModel, check_onnx, export_onnx
from da_toolkit.inference.predictor import Predictor
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders.dinov2 import bicubic_matrix, traceable_pos_embed
from da_toolkit.models.tiny import build_tiny_model
from da_toolkit.models.weights import save_weights


@pytest.mark.parametrize("out_len", [1, 3, 7, 16])
def test_bicubic_matrix_equals_torch_interpolate(out_len):
    v = torch.randn(1, 1, 5, 1)
    ref = torch.nn.functional.interpolate(v, scale_factor=((out_len + 0.1) / 5, 1.0), mode="bicubic", align_corners=False)
    got = bicubic_matrix(out_len, 5) @ v[0, 0, :, 0]
    np.testing.assert_allclose(got.numpy(), ref[0, 0, :, 0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("gh", "gw"), [(2, 3), (4, 4), (5, 2)])
def test_traceable_pos_embed_equals_the_eager_rule(gh, gw):
    enc = build_tiny_model().encoder  # stored grid 4x4
    eager = enc.pos_embed_for(gh, gw)
    traced_form = traceable_pos_embed(enc.pos_embed, gh, gw)
    torch.testing.assert_close(traced_form, eager, rtol=1e-5, atol=1e-6)


def test_export_is_a_plain_torch_onnx_export():
    source = inspect.getsource(export_module)
    for patch in ("MethodType", "setattr(", ".F =", "pos_embed_for ="):
        assert patch not in source  # no model internals are replaced during tracing


def test_export_command_parity_two_sizes_two_batches(tmp_path, rng):
    torch.manual_seed(0)
    # tiny weights carrying the V2-B preset's licence: the export records it (issue 19.9)
    model = build_tiny_model(licence="CC-BY-NC-4.0", origin="depth-anything-v2-vitb").eval()
    save_weights(model, tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny.onnx"
    # the model is rebuilt from the self-describing file alone (no preset)
    rc = main(["export", "--weights", str(tmp_path / "tiny.safetensors"), "--output", str(out),
               "--example-size", "28x42", "--check", "1x28x42", "3x56x28"])
    assert rc == 0 and out.is_file()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["output_kind"] == "disparity" and meta["input_multiple"] == "14"
    assert meta["upsample_align_corners"] == "true" and "DINOv2" in meta["model"]
    # read back with onnx itself (independent of onnxruntime's view)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["licence"] == "CC-BY-NC-4.0" and props["origin"] == "depth-anything-v2-vitb"
    assert OnnxDepthModel(out).provenance == {"licence": "CC-BY-NC-4.0", "origin": "depth-anything-v2-vitb"}
    # independent parity check at sizes and batches that differ from the traced example
    for b, h, w in [(2, 42, 70), (1, 56, 56), (4, 28, 28)]:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == (b, h, w)
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert all(r.relative <= 1e-4 for r in check_onnx(model, out, [(2, 70, 42)]))
    # onnxruntime backend of the Predictor equals the torch backend
    images = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), rng.integers(0, 256, (50, 20, 3), dtype=np.uint8)]
    ref = Predictor(model, input_size=28, progress=False).predict(images)
    got = Predictor(str(out), backend="onnxruntime", input_size=28, progress=False).predict(images)
    for r, g in zip(ref, got):
        assert np.abs(g - r).max() <= 1e-4 * np.abs(r).max()


def test_export_refuses_random_weights_unless_allowed(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", "--model", "tiny", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no weights loaded" in err and "--allow_random_weights" in err and not out.exists()
    assert main(["export", "--model", "tiny", "--output", str(out), "--allow_random_weights", "--check"]) == 0
    assert out.is_file()


def test_stride_32_cnn_exports_with_dynamic_sizes_in_multiples_of_32(tmp_path):
    from da_toolkit.models.decoders.dpt import DPTDecoder
    from tests.inference.test_inference_core import _TinyCNN

    torch.manual_seed(0)
    model = DepthModel(_TinyCNN(), DPTDecoder(features=8, out_channels=(8, 8, 8, 8))).eval()
    path = export_onnx(model, tmp_path / "cnn.onnx")  # traced at 128x192
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["input_multiple"] == "32"
    for b, h, w in [(1, 64, 64), (3, 96, 160)]:
        x = torch.randn(b, 3, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == (b, h, w) and np.abs(got - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1e-6)


def test_export_command_rejects_bad_shapes(tmp_path, capsys):
    save_weights(build_tiny_model(), tmp_path / "t.safetensors")
    assert main(["export", "--weights", str(tmp_path / "t.safetensors"), "--output", "x.onnx", "--check", "1x30x30"]) == 2
    assert "multiples of the model's input multiple 14" in capsys.readouterr().err
