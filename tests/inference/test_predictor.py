import numpy as np
import pytest
from PIL import Image

from da_toolkit.inference.datasets import bucket_batches
from da_toolkit.inference.predictor import Predictor


def _images(rng, sizes):
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_bucket_batches_groups_equal_keys_in_order():
    keys = ["a", "b", "a", "a", "b", "c", "a"]
    assert bucket_batches(keys, 2) == [[0, 2], [3, 6], [1, 4], [5]]
    with pytest.raises(ValueError):
        bucket_batches(keys, 0)


def test_predictor_equals_infer_image_mixed_sizes(tiny_model, rng):
    sizes = [(30, 40), (45, 60), (40, 30), (28, 28), (31, 41)]
    images = _images(rng, sizes)
    pred = Predictor(tiny_model, batch_size=3, input_size=42, progress=False)
    outs = pred.predict(images)
    assert [o.shape for o in outs] == sizes
    for im, out in zip(images, outs):
        assert out.dtype == np.float32
        ref = tiny_model.infer_image(im, input_size=42)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_predictor_reads_paths_in_workers(tiny_model, rng, tmp_path):
    images = _images(rng, [(30, 40), (40, 30), (30, 40)])
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / f"{i}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    pred = Predictor(tiny_model, batch_size=2, input_size=28, num_workers=1, progress=False)
    outs = pred.predict(paths)
    for im, out in zip(images, outs):
        np.testing.assert_allclose(out, tiny_model.infer_image(im, input_size=28), rtol=1e-5, atol=1e-5)


def test_predictor_reports_bad_files(tiny_model, rng, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    pred = Predictor(tiny_model, input_size=28, num_workers=0, progress=False)
    items = pred.predict_items([_images(rng, [(20, 20)])[0], str(bad)])
    assert items[0].error is None and items[0].depth.shape == (20, 20)
    assert items[1].depth is None and "broken.jpg" in items[1].error
    with pytest.raises(ValueError, match="broken.jpg"):
        pred.predict([str(bad)])


def test_predictor_bf16_close_to_fp32(tiny_model, rng):
    images = _images(rng, [(30, 40)])
    ref = Predictor(tiny_model, input_size=28, progress=False).predict(images)[0]
    for precision in ("bf16-mixed", "bf16-true", "16-mixed"):
        out = Predictor(tiny_model, precision=precision, input_size=28, progress=False).predict(images)[0]
        assert np.abs(out - ref).mean() <= 0.02 * np.abs(ref).mean()
        assert out.dtype == np.float32


def test_predictor_rejects_bad_arguments(tiny_model):
    with pytest.raises(ValueError, match="precision"):
        Predictor(tiny_model, precision="8")
    with pytest.raises(ValueError, match="backend"):
        Predictor(tiny_model, backend="tensorrt")


def test_predictor_does_not_cast_callers_model(tiny_model, rng):
    import torch

    Predictor(tiny_model, precision="bf16-true", input_size=28, progress=False).predict(_images(rng, [(20, 20)]))
    assert next(tiny_model.parameters()).dtype == torch.float32


def test_absurd_aspect_ratio_is_a_per_item_error(tiny_model, rng, tmp_path):
    # 10000x10 would need a 518000x518 network input: refused for that item only
    tall = np.zeros((10000, 10, 3), dtype=np.uint8)
    path = tmp_path / "tall.png"
    Image.fromarray(tall).save(path)
    ok = _images(rng, [(20, 20)])[0]
    pred = Predictor(tiny_model, batch_size=2, input_size=518)
    items = pred.predict_items([ok, tall, str(path)])
    assert items[0].error is None and items[0].depth.shape == (20, 20)
    for item in items[1:]:
        assert item.depth is None and "10000x10" in str(item.error)


def test_fastest_path_keeps_the_faster_function_per_shape():
    import time

    import torch

    from da_toolkit.inference.predictor import FastestPath

    calls = {"slow": 0, "fast": 0}

    def slow(x):
        calls["slow"] += 1
        time.sleep(0.05)
        return x[:, 0] * 2

    def fast(x):
        calls["fast"] += 1
        return x[:, 0] * 2

    x = torch.ones(2, 3, 4, 4)
    chooser = FastestPath(slow, fast, "precision='bf16-mixed', compile=True", torch.device("cpu"))
    with pytest.warns(RuntimeWarning, match="using fp32 eager for this size"):
        out = chooser(x)
    assert torch.equal(out, x[:, 0] * 2) and chooser.choices[(2, 3, 4, 4)][0] == "plain"
    assert calls == {"slow": 2, "fast": 1}  # warm-up + timed configured, timed plain
    chooser(x)
    assert calls == {"slow": 2, "fast": 2}  # decided once per shape
    winner = FastestPath(fast, slow, "compile=True", torch.device("cpu"))
    winner(x)
    assert winner.choices[(2, 3, 4, 4)][0] == "configured"


def test_configured_predictor_is_checked_against_fp32_eager(tiny_model, rng):
    from da_toolkit.inference.predictor import FastestPath

    images = _images(rng, [(30, 40), (30, 40)])
    checked = Predictor(tiny_model, precision="bf16-true", input_size=28, progress=False)
    assert isinstance(checked._fn, FastestPath)
    ref = Predictor(tiny_model, input_size=28, progress=False).predict(images)
    for out, r in zip(checked.predict(images), ref):
        assert np.abs(out - r).max() <= 0.05 * np.abs(r).max()  # bf16 or fp32, whichever was faster
    assert len(checked._fn.choices) == 1
    assert not isinstance(Predictor(tiny_model, progress=False)._fn, FastestPath)  # plain fp32: nothing to check
    assert not isinstance(Predictor(tiny_model, precision="bf16-true", speed_check=False, progress=False)._fn,
                          FastestPath)
