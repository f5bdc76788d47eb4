"""The per-kind examples of docs/plugins.md section 6 work as written and meet the contracts they state.

The ```py blocks of the page (each starting with ``# src/da_toolkit_myplugin/<module>.py``) are
written into a throwaway package next to section 3's ``Vignette`` and its hookimpl module, then
each component is checked against the toolkit: registration, the contract checks, a model with
the encoder/decoder described and rebuilt, values against hand computations.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from da_toolkit import plugins
from da_toolkit.inference.items import PredictionItem
from da_toolkit.losses.contract import LossContractError, check_loss
from da_toolkit.models import DepthModel, build_model, describe_model
from da_toolkit.models.contract import check_encoder, check_model
from da_toolkit.models.decoders.dpt import DPTDecoder

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
PACKAGE = "da_toolkit_myplugin"
HEADER = re.compile(rf"^# src/{PACKAGE}/(\w+)\.py")


def doc_modules() -> dict[str, str]:
    """module name -> source, from the page: section 3's perturb/plugin blocks + section 6's."""
    text = DOC.read_text(encoding="utf-8")
    python = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    modules = {"perturb": python[0], "plugin": python[1]}
    for block in re.findall(r"```py\n(.*?)```", text, re.DOTALL):
        match = HEADER.match(block)
        assert match, f"a ```py block of docs/plugins.md does not start with '# src/{PACKAGE}/<module>.py': {block[:80]!r}"
        name = match.group(1)
        modules[name] = modules.get(name, "") + "\n" + block
    return modules


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    root = tmp_path_factory.mktemp("docs-plugin")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    modules = doc_modules()
    assert {"encoder", "decoder", "loss", "source", "metric", "writer", "plugin"} <= set(modules)
    for name, source in modules.items():
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(root))
    try:
        import da_toolkit_myplugin.plugin  # noqa: F401

        yield sys.modules[PACKAGE]
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_every_kind_registers(pkg: ModuleType) -> None:
    ep = metadata.EntryPoint(name="myplugin", value=f"{PACKAGE}.plugin", group="da_toolkit")
    reg = plugins.build_registry(entry_points=[ep])
    assert [f for f in reg.failures if f.plugin == "myplugin"] == []
    expected = {
        "encoders": ("myplugin_pyramid", "TinyPyramid"), "decoders": ("myplugin_coarse", "CoarseHead"),
        "perturbations": ("vignette", "Vignette"), "losses": ("myplugin_cutmix_l1", "CutMixMaskedL1"),
        "datasources": ("myplugin_rgbd", "MillimetreRGBD"), "metrics": ("myplugin_mae", "MaskedMAE"),
        "writers": ("myplugin_text", "TextWriter"),
    }  # fmt: skip
    for kind, (name, cls) in expected.items():
        assert reg.get(kind, name).__name__ == cls, kind
    assert reg.get("losses", "myplugin_l1").__name__ == "MaskedL1"


def test_encoder_meets_its_declarations_and_rebuilds(pkg: ModuleType) -> None:
    from da_toolkit_myplugin.encoder import TinyPyramid

    enc = TinyPyramid(width=4)
    assert enc.init_args == {"width": 4}
    check_encoder(enc, "model.init_args.model.init_args.encoder", levels=4)
    out = enc(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in out.features] == [(1, 4, 16, 24), (1, 8, 8, 12), (1, 16, 4, 6), (1, 32, 2, 3)]
    torch.manual_seed(0)
    model = DepthModel(enc, DPTDecoder(features=8, out_channels=(8, 8, 8, 8))).eval()
    assert model.input_multiple == 32
    check_model(model)
    desc = describe_model(model)
    assert desc["init_args"]["encoder"] == {"class_path": f"{PACKAGE}.encoder.TinyPyramid", "init_args": {"width": 4}}
    rebuilt = build_model(desc).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_decoder_outputs_and_rebuilds(pkg: ModuleType) -> None:
    from da_toolkit_myplugin.decoder import CoarseHead
    from da_toolkit_myplugin.encoder import TinyPyramid

    relative = DepthModel(TinyPyramid(width=4), CoarseHead())
    metric = DepthModel(TinyPyramid(width=4), CoarseHead(max_depth=5.0))
    check_model(relative)
    check_model(metric)
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        disparity, metres = relative(x), metric(x)
    assert relative.output_kind == "disparity" and disparity.shape == (2, 64, 32) and bool((disparity > 0).all())
    assert metric.output_kind == "metric" and bool(((metres > 0) & (metres < 5)).all())
    desc = describe_model(metric)
    assert desc["init_args"]["decoder"] == {"class_path": f"{PACKAGE}.decoder.CoarseHead", "init_args": {"max_depth": 5.0}}
    rebuilt = build_model(desc)
    rebuilt.load_state_dict(metric.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), metres, rtol=0, atol=0)


def test_losses_both_forms(pkg: ModuleType) -> None:
    from da_toolkit_myplugin.loss import CutMixMaskedL1, MaskedL1

    check_loss(MaskedL1(), "labeled", "model.init_args.labeled_loss")
    check_loss(CutMixMaskedL1(), "cutmix", "model.init_args.unlabeled_loss")
    with pytest.raises(LossContractError, match="CutMixRegionLoss"):
        check_loss(MaskedL1(), "cutmix", "model.init_args.unlabeled_loss")
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]], requires_grad=True)
    target = torch.tensor([[[2.0, 2.0], [float("nan"), 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[[True, True], [False, True]], [[False] * 2] * 2])
    loss = MaskedL1()(pred, target, mask)  # sample 0: (1 + 0 + 4) / 3; sample 1 has no valid pixel
    assert loss.item() == pytest.approx(5 / 3)
    loss.backward()
    assert torch.isfinite(pred.grad).all()  # the NaN of an invalid pixel reaches no gradient
    half = torch.tensor([[[True, False], [True, False]]])
    p, a, b = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), torch.zeros(1, 2, 2), torch.full((1, 2, 2), 4.0)
    assert CutMixMaskedL1()(p, a, b, half, None).item() == pytest.approx(0.5 * (1 + 3) / 2 + 0.5 * (2 + 0) / 2)


def test_source_samples(pkg: ModuleType, tmp_path: Path) -> None:
    from da_toolkit_myplugin.source import MillimetreRGBD

    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    rgb = np.full((2, 3, 3), 77, dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb" / "f0.png")
    Image.fromarray(np.array([[0, 1000, 2500], [500, 0, 65000]], dtype=np.uint16)).save(tmp_path / "depth" / "f0.png")
    sample = MillimetreRGBD(str(tmp_path))[0]
    np.testing.assert_array_equal(sample["image"], rgb)
    np.testing.assert_allclose(sample["depth"], [[0, 1.0, 2.5], [0.5, 0, 65.0]])
    np.testing.assert_array_equal(sample["valid"], [[False, True, True], [True, False, True]])
    assert sample["depth_kind"] == "metric" and sample["meta"]["id"] == "f0" and sample["meta"]["source"] == "mm_rgbd"
    assert sample["meta"]["image_ref"] == {"path": str((tmp_path / "rgb" / "f0.png").resolve())}


def test_metric_against_numpy(pkg: ModuleType) -> None:
    from da_toolkit_myplugin.metric import MaskedMAE

    g = torch.Generator().manual_seed(0)
    metric = MaskedMAE()
    pairs = [(torch.rand(2, 4, 5, generator=g), torch.rand(2, 4, 5, generator=g), torch.rand(2, 4, 5, generator=g) > 0.3)
             for _ in range(2)]  # fmt: skip
    for pred, target, mask in pairs:
        metric.update(pred, target, mask)
    errors = np.concatenate([(p - t).abs().numpy()[m.numpy()] for p, t, m in pairs])
    assert metric.compute()["mae"].item() == pytest.approx(float(errors.mean()), rel=1e-6)


def test_writer_writes_once(pkg: ModuleType, tmp_path: Path) -> None:
    from da_toolkit_myplugin.writer import TextWriter

    depth = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    writer = TextWriter(output_dir=str(tmp_path))
    item = PredictionItem(depth=depth, meta={"id": "sub/img", "source": "img.jpg"})
    writer.write_items([item])
    np.testing.assert_allclose(np.loadtxt(tmp_path / "sub" / "img.txt"), depth, rtol=1e-5)
    writer.write_items([item])  # already written: skipped
    assert writer.written == 1 and writer.failures == []
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["img.txt"]  # no temporary left
