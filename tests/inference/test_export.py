import numpy as np
import onnxruntime as ort
import pytest
import torch

from da_toolkit.cli import main
from da_toolkit.inference.export import bicubic_matrix, check_onnx
from da_toolkit.inference.predictor import Predictor
from da_toolkit.models.tiny import build_tiny_model
from da_toolkit.models.weights import save_weights


@pytest.mark.parametrize("out_len", [1, 3, 7, 16])
def test_bicubic_matrix_equals_torch_interpolate(out_len):
    v = torch.randn(1, 1, 5, 1)
    ref = torch.nn.functional.interpolate(v, scale_factor=((out_len + 0.1) / 5, 1.0), mode="bicubic", align_corners=False)
    got = bicubic_matrix(out_len, 5) @ v[0, 0, :, 0]
    np.testing.assert_allclose(got.numpy(), ref[0, 0, :, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_export_command_parity_two_sizes_two_batches(tmp_path, rng):
    torch.manual_seed(0)
    model = build_tiny_model().eval()
    save_weights(model, tmp_path / "tiny.safetensors", preset="tiny")
    out = tmp_path / "tiny.onnx"
    rc = main(["export", "--preset", "tiny", "--weights", str(tmp_path / "tiny.safetensors"), "--output", str(out),
               "--example-size", "28x42", "--check", "1x28x42", "3x56x28"])
    assert rc == 0 and out.is_file()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["output_kind"] == "disparity"
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


def test_export_command_rejects_bad_shapes(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--preset", "tiny", "--output", "x.onnx", "--check", "1x30x30"])
    assert "multiples of 14" in capsys.readouterr().err
