"""Registry-driven contract: every registered encoder x every registered decoder (issues 11.6, 17.3).

The pairs come from the plugin registry (``get_registry().usable``), not from a hand list, so the
components of an installed plugin are covered too. Each component needs tiny settings in
:data:`TINY_ENCODERS` / :data:`TINY_DECODERS` (or :data:`PLUGIN_TINY_ENCODERS` for known
third-party plugins); a registered component without them fails loudly, it is never skipped.

Per valid pair (tiny sizes, random weights, nothing downloaded):

- builds from its description by registered names, passes ``check_model``;
- forward + backward (gradients reach encoder and decoder), eval at a transposed size;
- saves and reloads (our safetensors and a task ``.ckpt``) through ``da_toolkit.load_model(path)``
  with identical output;
- predicts through the inference core at a non-square size that is no multiple of the model's
  input multiple, against the documented rule computed here;
- trains 2 steps of ``TeacherTask`` and ``StudentTask`` through Lightning and reloads from the
  written ``.ckpt`` (slow, except the representative pair);
- exports to ONNX with onnxruntime parity, or is in :data:`NOT_EXPORTABLE` and really fails
  (slow, except the representative pair).

Invalid pairs are in :data:`INVALID_PAIRS` with the expected error, asserted.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import da_toolkit
from da_toolkit.models import CHECKPOINT_KEY, build_model, describe_model
from da_toolkit.models.contract import check_model
from da_toolkit.models.inference_core import predict_rgb, predict_tensor
from da_toolkit.models.weights import save_weights
from da_toolkit.plugins import BUILTIN_NAME, get_registry

# ----------------------------------------------------------------------------- tables

#: Tiny constructor arguments of every built-in encoder, keyed by registered name.
TINY_ENCODERS: dict[str, dict[str, Any]] = {
    "dinov2": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56, "layer_indices": [0, 0, 1, 1]},
    "timm": {"name": "mobilenetv3_small_050"},
    "convnext": {"variant": "atto"},
    "smp_encoder": {"name": "tu-mobilenetv3_small_050"},
}
#: Tiny constructor arguments of every built-in decoder, keyed by registered name.
TINY_DECODERS: dict[str, dict[str, Any]] = {
    "dpt": {"features": 16, "out_channels": [8, 16, 32, 32]},
    "smp_decoder": {"architecture": "unet", "head_channels": 8,
                    "decoder_kwargs": {"decoder_channels": [16, 16, 8, 8, 8]}},
}
#: Tiny settings of known third-party plugins' components, used when the plugin is installed
#: (``plugins/da-toolkit-dermoscopy``: ``test_plugin_encoder_passes_the_contract`` installs it).
PLUGIN_TINY_ENCODERS: dict[str, dict[str, Any]] = {
    "dermoscopy_cnn": {"widths": [8, 16, 16, 32]},
}
PLUGIN_TINY_DECODERS: dict[str, dict[str, Any]] = {}

#: Pairs that cannot work by design -> regex of the clear error building them must raise.
INVALID_PAIRS: dict[tuple[str, str], str] = {
    ("dinov2", "smp_decoder"): r"SmpDecoder needs a pyramid .* got reductions \[14, 14, 14, 14\]\. "
                               r"ViT encoders \(one stride for every level\) need the dpt decoder",
}
#: Pairs that build and train but cannot be exported -> (reason, regex of the export error).
#: Every entry is asserted to fail, so the table cannot go stale. Empty: every valid pair exports.
NOT_EXPORTABLE: dict[tuple[str, str], tuple[str, str]] = {}

#: The pair whose Lightning training and ONNX export stay in the default suite.
REPRESENTATIVE = ("dinov2", "dpt")
#: Relative onnxruntime-vs-torch tolerance (max |diff| / max |output|), fp32.
ONNX_RTOL = 1e-4

# ----------------------------------------------------------------------------- pairs from the registry

_REGISTRY = get_registry()
ENCODERS = sorted(_REGISTRY.usable("encoders"))
DECODERS = sorted(_REGISTRY.usable("decoders"))
PAIRS = [(e, d) for e in ENCODERS for d in DECODERS]
VALID_PAIRS = [p for p in PAIRS if p not in INVALID_PAIRS]


def _params(pairs: list[tuple[str, str]], slow_except_representative: bool = False) -> list[Any]:
    out = []
    for e, d in pairs:
        marks = [pytest.mark.slow] if slow_except_representative and (e, d) != REPRESENTATIVE else []
        out.append(pytest.param(e, d, marks=marks, id=f"{e}+{d}"))
    return out


def tiny_args(kind: str, name: str) -> dict[str, Any]:
    """The tiny settings of a registered component; fails (never skips) when there are none."""
    table = {"encoders": {**PLUGIN_TINY_ENCODERS, **TINY_ENCODERS},
             "decoders": {**PLUGIN_TINY_DECODERS, **TINY_DECODERS}}[kind]
    if name not in table:
        comp = _REGISTRY.kind(kind)[name]
        where = f"TINY_{kind.upper()}" if comp.plugin == BUILTIN_NAME else f"PLUGIN_TINY_{kind.upper()}"
        pytest.fail(
            f"registered {kind[:-1]} {name!r} ({comp.cls.__module__}.{comp.cls.__qualname__}, plugin "
            f"{comp.plugin!r}) has no tiny settings: add it to {where} in "
            f"tests/contracts/test_registry_contract.py so the registry contract covers it",
            pytrace=False,
        )
    return copy.deepcopy(table[name])


def description(enc: str, dec: str) -> dict[str, Any]:
    """The model description of a pair, by registered names (the CLI/recipe form)."""
    return {
        "class_path": "DepthModel",
        "init_args": {
            "encoder": {"class_path": enc, "init_args": tiny_args("encoders", enc)},
            "decoder": {"class_path": dec, "init_args": tiny_args("decoders", dec)},
        },
    }


@functools.cache
def _built(enc: str, dec: str) -> Any:
    return build_model(description(enc, dec), where=f"{enc}+{dec}")


def build(enc: str, dec: str, fresh: bool = False) -> Any:
    """The tiny model of a pair in training mode: built once per process from its description
    (``fresh=True``: built again), then copied, so each test gets its own."""
    if fresh:
        return build_model(description(enc, dec), where=f"{enc}+{dec}")
    return copy.deepcopy(_built(enc, dec)).train()


def sizes(model: Any) -> tuple[int, int]:
    """A small non-square network size: 2 x 3 input multiples."""
    m = int(model.input_multiple)
    return 2 * m, 3 * m


def scramble_buffers_(model: torch.nn.Module, seed: int = 3) -> None:
    """Give normalisation statistics non-default values (a reload that dropped them would show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)


def images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth RGB images in [0, 1], ``(b,3,h,w)``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 3, 4, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)


# ----------------------------------------------------------------------------- the tables are honest


def test_every_registered_component_has_tiny_settings() -> None:
    for kind, table, extra in (("encoders", TINY_ENCODERS, PLUGIN_TINY_ENCODERS),
                               ("decoders", TINY_DECODERS, PLUGIN_TINY_DECODERS)):
        registered = set(_REGISTRY.usable(kind))
        missing = sorted(registered - set(table) - set(extra))
        assert not missing, (
            f"registered {kind} without tiny settings (add them to TINY_{kind.upper()}, or "
            f"PLUGIN_TINY_{kind.upper()} for a plugin's): "
            + ", ".join(f"{n} (plugin {_REGISTRY.kind(kind)[n].plugin!r})" for n in missing)
        )
        stale = sorted(set(table) - registered)
        assert not stale, f"TINY_{kind.upper()} names {stale}, which are not registered any more"


def test_tables_name_registered_pairs_only() -> None:
    # plugin components may be absent; built-in ones may not
    known_enc = set(ENCODERS) | set(PLUGIN_TINY_ENCODERS)
    known_dec = set(DECODERS) | set(PLUGIN_TINY_DECODERS)
    for table in (INVALID_PAIRS, NOT_EXPORTABLE):
        for e, d in table:
            assert e in known_enc and d in known_dec, f"{(e, d)} is not a registered pair"
    assert not set(INVALID_PAIRS) & set(NOT_EXPORTABLE)
    assert REPRESENTATIVE in VALID_PAIRS
    assert {"dinov2", "timm", "convnext", "smp_encoder"} <= set(ENCODERS)
    assert {"dpt", "smp_decoder"} <= set(DECODERS)


# ----------------------------------------------------------------------------- build / invalid pairs


@pytest.mark.parametrize(("enc", "dec"), _params(PAIRS))
def test_pair_builds_from_registered_names_or_raises_its_documented_error(enc: str, dec: str) -> None:
    if (enc, dec) in INVALID_PAIRS:
        with pytest.raises(ValueError, match=INVALID_PAIRS[(enc, dec)]):
            build(enc, dec, fresh=True)
        return
    model = build(enc, dec, fresh=True)
    assert type(model.encoder) is _REGISTRY.usable("encoders")[enc]
    assert type(model.decoder) is _REGISTRY.usable("decoders")[dec]
    check_model(model, where=f"{enc}+{dec}")
    # the description names the classes by dotted path (plugins rebuild) and rebuilds the same model
    desc = describe_model(model)
    assert desc["init_args"]["encoder"]["class_path"].endswith(type(model.encoder).__qualname__)
    again = build_model(desc)
    assert describe_model(again) == desc
    assert sorted(again.state_dict()) == sorted(model.state_dict())


# ----------------------------------------------------------------------------- forward / backward


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS))
def test_forward_backward(enc: str, dec: str) -> None:
    model = build(enc, dec).train()
    h, w = sizes(model)
    x = torch.randn(2, 3, h, w)
    y = model(x)
    assert y.shape == (2, h, w) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert (y >= 0).all() and (y > 0).any(), "relative (ReLU) head: non-negative and not dead at init"
    (y * torch.linspace(0.5, 1.5, w)).mean().backward()
    for part in ("encoder", "decoder"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
        assert grads, f"{enc}+{dec}: no gradient reaches the {part}"
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads), f"{enc}+{dec}: the {part}'s gradients are all zero"
    model.eval()
    with torch.no_grad():
        tall = model(torch.randn(1, 3, w, h))
    assert tall.shape == (1, w, h)


# ----------------------------------------------------------------------------- save / reload


def _task_checkpoint(model: Any, path: Path) -> None:
    """A ``.ckpt`` as a task writes it: the task's state dict + what ``on_save_checkpoint`` adds."""
    from da_toolkit.tasks import TeacherTask

    task = TeacherTask(model=model, log_images_every_n_steps=0)
    ckpt: dict[str, Any] = {"state_dict": task.state_dict(), "pytorch-lightning_version": "2"}
    task.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS))
def test_reload_from_own_files_gives_identical_output(enc: str, dec: str, tmp_path: Path) -> None:
    model = build(enc, dec)
    scramble_buffers_(model)
    _task_checkpoint(model, tmp_path / "task.ckpt")  # (the task runs one dry forward in train mode)
    model.eval()
    save_weights(model, tmp_path / "model.safetensors")
    h, w = sizes(model)
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        ref = model(x)
    for name in ("model.safetensors", "task.ckpt"):
        torch.manual_seed(123)  # the rebuilt model's random init differs from the original's
        loaded = da_toolkit.load_model(tmp_path / name)
        assert type(loaded.encoder) is type(model.encoder) and type(loaded.decoder) is type(model.decoder)
        assert describe_model(loaded) == describe_model(model), name
        assert not loaded.training
        with torch.no_grad():
            out = loaded(x)
        assert torch.equal(out, ref), f"{enc}+{dec}: {name} reloads with different output"


# ----------------------------------------------------------------------------- inference core


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS))
def test_predict_through_the_inference_core_at_a_non_square_size(enc: str, dec: str) -> None:
    model = build(enc, dec).eval()
    scramble_buffers_(model)
    m = int(model.input_multiple)
    # sides that are not multiples of m: the documented rule rounds each to the nearest multiple
    H, W = 2 * m + m // 3, 4 * m - m // 3
    net_h, net_w = 2 * m, 4 * m
    rgb = images(2, H, W)
    with torch.no_grad():
        got = predict_tensor(model, rgb)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (F.interpolate(rgb, size=(net_h, net_w), mode="bilinear", align_corners=False) - mean) / std
        pred = model(x)
        expected = F.interpolate(pred[:, None], size=(H, W), mode="bilinear",
                                 align_corners=bool(model.upsample_align_corners))[:, 0]
    assert got.shape == (2, H, W)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert float(got.std()) > 0
    # the official uint8 path at a keep-aspect input size
    u8 = (images(1, W, H, seed=4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    out = predict_rgb(model, u8, input_size=3 * m)
    assert out.shape == (W, H) and out.dtype == np.float32 and np.isfinite(out).all()


# ----------------------------------------------------------------------------- Lightning: 2 steps


def _labeled(h: int, w: int, b: int = 2, seed: int = 0) -> dict[str, Any]:
    image = images(b, h, w, seed)
    return {
        "image": image,
        "depth": 1.0 / (0.2 + image.mean(dim=1)),  # learnable: disparity follows brightness
        "valid": torch.ones(b, h, w, dtype=torch.bool),
        "depth_kind": ["metric"] * b,
        "meta": [{"source": "contract", "id": str(i)} for i in range(b)],
    }


def _unlabeled(h: int, w: int, b: int = 2, seed: int = 1) -> dict[str, Any]:
    return {"image": images(b, h, w, seed), "meta": [{"source": "contract-u", "id": str(i)} for i in range(b)]}


def _fit(task: Any, batches: list[dict[str, Any]], root: Path) -> Any:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    class _Data(pl.LightningDataModule):
        def train_dataloader(self) -> DataLoader:
            return DataLoader(batches, batch_size=1, shuffle=False, collate_fn=lambda items: items[0])

    trainer = pl.Trainer(
        max_steps=len(batches), accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        default_root_dir=str(root),
    )
    trainer.fit(task, _Data())
    assert trainer.global_step == len(batches)
    return trainer


def _check_trained_and_reloads(task: Any, before: dict[str, torch.Tensor], trainer: Any, path: Path) -> None:
    after = task.model.state_dict()
    for part in ("encoder.", "decoder."):
        changed = [k for k, v in before.items() if k.startswith(part) and not torch.equal(v, after[k])]
        assert changed, f"2 training steps changed no {part[:-1]} parameter"
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    trainer.save_checkpoint(path)
    assert CHECKPOINT_KEY in torch.load(path, map_location="cpu", weights_only=True)
    model = task.model.eval()
    loaded = da_toolkit.load_model(path)
    x = torch.randn(1, 3, *sizes(model))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)), f"{path.name} reloads with different output"


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS, slow_except_representative=True))
def test_teacher_trains_two_steps_and_reloads_from_its_ckpt(enc: str, dec: str, tmp_path: Path) -> None:
    from da_toolkit.tasks import OptimConfig, TeacherTask

    model = build(enc, dec)
    task = TeacherTask(model=model, optim=OptimConfig(encoder_lr=1e-3, schedule="constant"),
                       log_images_every_n_steps=0)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    h, w = sizes(model)
    trainer = _fit(task, [{"labeled": _labeled(h, w, seed=s)} for s in range(2)], tmp_path)
    _check_trained_and_reloads(task, before, trainer, tmp_path / "teacher.ckpt")


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS, slow_except_representative=True))
def test_student_trains_two_steps_and_reloads_from_its_ckpt(enc: str, dec: str, tmp_path: Path) -> None:
    """Online teacher of the same pair, CutMix on the unlabeled batch, feature alignment."""
    from da_toolkit.losses import FeatureAlignmentLoss
    from da_toolkit.perturb import CutMix
    from da_toolkit.tasks import OptimConfig, StudentTask

    model = build(enc, dec)
    save_weights(build(enc, dec, fresh=True), tmp_path / "teacher.safetensors")
    teacher_desc = description(enc, dec)
    teacher_desc["init_args"]["weights"] = str(tmp_path / "teacher.safetensors")  # a loaded teacher
    teacher = build_model(teacher_desc)
    assert teacher.weights_loaded
    task = StudentTask(model=model, teacher=teacher, cutmix=CutMix(p=1.0),
                       feature_loss=FeatureAlignmentLoss(margin=0.85),
                       optim=OptimConfig(encoder_lr=1e-3, schedule="constant"), log_images_every_n_steps=0)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    h, w = sizes(model)
    batches = [{"labeled": _labeled(h, w, seed=s), "unlabeled": _unlabeled(h, w, seed=10 + s)} for s in range(2)]
    trainer = _fit(task, batches, tmp_path)
    assert all(torch.equal(v, task.teacher.state_dict()[k]) for k, v in teacher_before.items()), "teacher changed"
    _check_trained_and_reloads(task, before, trainer, tmp_path / "student.ckpt")


# ----------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize(("enc", "dec"), _params(VALID_PAIRS, slow_except_representative=True))
def test_onnx_export_parity_or_listed_not_exportable(enc: str, dec: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    from da_toolkit.inference.export import export_onnx

    model = build(enc, dec).eval()
    scramble_buffers_(model)
    path = tmp_path / "model.onnx"
    if (enc, dec) in NOT_EXPORTABLE:
        reason, error = NOT_EXPORTABLE[(enc, dec)]
        with pytest.raises(Exception, match=error):  # noqa: B017 - the table names the message
            export_onnx(model, path)
        return
    m = int(model.input_multiple)
    export_onnx(model, path)  # traced at 4 x 6 multiples, batch 2
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["input_multiple"] == str(m)
    assert re.search(type(model.encoder).__qualname__, meta["model"])
    g = torch.Generator().manual_seed(5)
    for b, h, w in [(1, 5 * m, 3 * m), (3, 2 * m, 7 * m)]:  # other batch, height and width
        x = torch.randn(b, 3, h, w, generator=g)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == (b, h, w)
        assert np.abs(got - ref).max() <= ONNX_RTOL * np.abs(ref).max(), f"{enc}+{dec}: onnxruntime differs at {(b, h, w)}"


# ----------------------------------------------------------------------------- a plugin's components


@pytest.mark.slow
def test_plugin_encoder_passes_the_contract(tmp_path: Path) -> None:
    """The example plugin package, pip-installed into a temporary folder: its encoder appears in
    the registry-driven pairs (by registration alone) and passes every contract test, Lightning
    training and ONNX export included."""
    import os
    import subprocess
    import sys

    from tests.plugin_install import install_to_target

    repo = Path(__file__).resolve().parents[2]
    site = install_to_target(repo / "plugins" / "da-toolkit-dermoscopy", tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD", "DA_TOOLKIT_BLOCK_PLUGINS", "DA_TOOLKIT_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(repo), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
         "-k", "dermoscopy_cnn", "-m", "slow or not slow", "-rA"],
        capture_output=True, text=True, env=env, cwd=repo, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.findall(r"PASSED \S+\[(dermoscopy_cnn\+\w+)\]", done.stdout)
    assert {"dermoscopy_cnn+dpt", "dermoscopy_cnn+smp_decoder"} <= set(passed), done.stdout[-4000:]
    for test in ("test_teacher_trains_two_steps", "test_student_trains_two_steps", "test_onnx_export_parity"):
        assert re.search(rf"PASSED \S+::{test}\w*\[dermoscopy_cnn\+dpt\]", done.stdout), (test, done.stdout[-4000:])
