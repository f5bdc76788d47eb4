"""Dead-at-init heads (issue 14.1): the positive head init, the fit-time warning, and the refusal
to write constant pseudo-labels. Models are built from the encoder/decoder classes (random
weights, no downloads)."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from da_toolkit.losses import AffineInvariantLoss
from da_toolkit.models.decoders import dpt as dpt_module
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders import DINOv2Encoder
from da_toolkit.tasks.health import (
    ConstantPseudoLabelError,
    DeadModelError,
    DeadModelWarning,
    TrainingHealthCheck,
    check_pseudo_labels,
    constant_maps,
)

#: seeds whose tiny model (below) was dead with PyTorch's default init of the final conv
#: (measured with the code before the fix, benchmarks/bench_dead_heads.py: 9/24 seeds dead)
DEAD_BEFORE = (1, 3, 5)


def _tiny(seed: int, max_depth: float | None = None) -> DepthModel:
    torch.manual_seed(seed)
    encoder = DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, img_size=56, layer_indices=[0, 0, 1, 1])
    return DepthModel(encoder, DPTDecoder(features=16, out_channels=[8, 16, 32, 32], max_depth=max_depth))


def _images(n: int = 2, side: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, side, side, generator=g) * 2 - 1


def _final_conv(model: DepthModel) -> nn.Conv2d:
    return model.decoder.scratch.output_conv2[2]


def _pre_activation(model: DepthModel, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = _final_conv(model).register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        model.train()(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("seed", DEAD_BEFORE)
def test_seeds_dead_with_the_default_init_start_alive(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x = _images()
    with monkeypatch.context() as m:
        m.setattr(dpt_module, "init_positive_head", lambda conv: None)
        before = _tiny(seed)
    with torch.no_grad():
        assert (before.train()(x) == 0).all()  # dead: ReLU output 0 everywhere
    after = _tiny(seed)
    assert (_pre_activation(after, x) > 0).all()
    with torch.no_grad():
        out = after.train()(x)
    assert (out > 0).all() and not constant_maps(out).any()
    # only the final conv differs: same magnitudes, signs made non-negative, bias positive
    torch.testing.assert_close(_final_conv(after).weight, _final_conv(before).weight.abs())
    assert (_final_conv(after).bias > 0).all()
    for (name, a), (_, b) in zip(after.named_parameters(), before.named_parameters(), strict=True):
        if not name.startswith("decoder.scratch.output_conv2.2"):
            assert torch.equal(a, b), name


def test_loaded_weights_overwrite_the_init_bit_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    released = _tiny(7).state_dict()  # stands for a released checkpoint
    with monkeypatch.context() as m:
        m.setattr(dpt_module, "init_positive_head", lambda conv: None)
        old = _tiny(11)
    new = _tiny(11)
    old.load_state_dict(released)
    new.load_state_dict(released)
    x = _images()
    with torch.no_grad():
        assert torch.equal(old.eval()(x), new.eval()(x))


def test_metric_head_keeps_the_default_init(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(dpt_module, "init_positive_head", lambda conv: None)
        default = _tiny(3, max_depth=20.0)
    built = _tiny(3, max_depth=20.0)
    assert torch.equal(_final_conv(built).weight, _final_conv(default).weight)
    assert (_final_conv(built).weight < 0).any()


class _Task(pl.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = AffineInvariantLoss()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.loss(self.model(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def _fit(model: nn.Module, check: TrainingHealthCheck) -> None:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.rand(4, 3, 28, 28, generator=g), torch.rand(4, 28, 28, generator=g) + 0.1)
    trainer = pl.Trainer(
        max_steps=check.steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[check],
    )
    trainer.fit(_Task(model), DataLoader(data, batch_size=2))


def _dead_model() -> DepthModel:
    model = _tiny(0)
    with torch.no_grad():
        _final_conv(model).bias.fill_(-100.0)  # deliberately dead: pre-activation < 0 everywhere
    return model


def test_fit_warns_loudly_on_a_dead_model() -> None:
    check = TrainingHealthCheck(steps=2)
    with pytest.warns(DeadModelWarning, match=r"DEAD MODEL: its predictions were constant.*zero gradient"):
        _fit(_dead_model(), check)
    assert check.reported


def test_fit_with_a_live_model_does_not_warn() -> None:
    check = TrainingHealthCheck(steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadModelWarning)
        _fit(_tiny(1), check)  # seed 1 was dead before the fix
    assert not check.reported


def test_strict_health_check_raises_on_a_dead_model() -> None:
    with pytest.raises(DeadModelError, match="constant"):
        _fit(_dead_model(), TrainingHealthCheck(steps=2, strict=True))
    with pytest.raises(ValueError, match="steps"):
        TrainingHealthCheck(steps=0)


def test_pseudo_labels_from_a_dead_teacher_are_refused_naming_the_teacher_file() -> None:
    with torch.no_grad():
        labels = _dead_model().eval()(_images())
    with pytest.raises(ConstantPseudoLabelError, match=r"teacher weights '/w/teacher.safetensors'.*'a.jpg'"):
        check_pseudo_labels(labels, "/w/teacher.safetensors", names=["a.jpg", "b.jpg"])
    with pytest.raises(ConstantPseudoLabelError, match=r"no weights file.*item 0"):
        check_pseudo_labels(labels, None)


def test_pseudo_label_check_passes_varying_maps_and_refuses_non_finite_ones() -> None:
    with torch.no_grad():
        labels = _tiny(2).eval()(_images())
    check_pseudo_labels(labels, "t.pth")  # a live random model: varying maps pass
    check_pseudo_labels(labels[:, None], "t.pth")  # (B,1,H,W) too
    bad = labels.clone()
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ConstantPseudoLabelError, match=r"item 1 of the batch holds NaN/inf"):
        check_pseudo_labels(bad, "t.pth")
    one_constant = labels.clone()
    one_constant[1] = 0.5
    with pytest.raises(ConstantPseudoLabelError, match=r"constant 0.5.*'y.png'"):
        check_pseudo_labels(one_constant, "t.pth", names=["x.png", "y.png"])
    with pytest.raises(ValueError, match="names"):
        check_pseudo_labels(labels, "t.pth", names=["only-one"])


def test_constant_maps_tolerance() -> None:
    maps = torch.tensor([[[1.0, 1.0]], [[1.0, 1.0 + 1e-4]]])
    assert constant_maps(maps).tolist() == [True, False]
    assert constant_maps(maps, atol=1e-3).tolist() == [True, True]
