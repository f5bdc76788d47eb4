import math

import pytest
import torch
from torch import nn

from da_toolkit.tasks.optim import OptimConfig, build_optimizer, linear_factor, param_groups


def test_linear_and_poly_factors_match_closed_form() -> None:
    total, warm = 110, 10
    assert linear_factor(0, total, warm) == pytest.approx(1 / 10)
    assert linear_factor(9, total, warm) == pytest.approx(1.0)
    assert linear_factor(10, total, warm) == pytest.approx(1.0)
    assert linear_factor(60, total, warm) == pytest.approx(0.5)
    assert linear_factor(110, total, warm) == pytest.approx(0.0)
    assert linear_factor(60, total, warm, power=0.9) == pytest.approx(0.5**0.9)
    assert linear_factor(5, 0) == 1.0  # unknown length -> constant


def test_param_groups_decoder_gets_ten_times_the_encoder_lr() -> None:
    enc, dec = nn.Linear(2, 2), nn.Linear(2, 2)
    frozen = nn.Linear(2, 2)
    frozen.weight.requires_grad_(False)
    cfg = OptimConfig(encoder_lr=5e-6, decoder_lr_mult=10.0)
    groups = param_groups(enc.parameters(), [*dec.parameters(), frozen.weight], cfg)
    assert [g["name"] for g in groups] == ["encoder", "decoder"]
    assert groups[0]["lr"] == pytest.approx(5e-6)
    assert groups[1]["lr"] == pytest.approx(5e-5)
    assert all(p is not frozen.weight for g in groups for p in g["params"])


@pytest.mark.parametrize(("name", "cls"), [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)])
def test_build_optimizer_schedule_steps_lr_down(name: str, cls: type) -> None:
    enc, dec = nn.Linear(2, 2), nn.Linear(2, 2)
    cfg = OptimConfig(optimizer=name, encoder_lr=1e-3, schedule="poly", poly_power=0.9)
    out = build_optimizer(param_groups(enc.parameters(), dec.parameters(), cfg), cfg, total_steps=4)
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert isinstance(opt, cls)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3 * (1 - t / 4) ** 0.9 for t in range(3)])
    assert math.isclose(opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"], 10.0)


def test_bad_optim_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="optim.optimizer"):
        OptimConfig(optimizer="lbfgs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optim.schedule"):
        OptimConfig(schedule="cosine")  # type: ignore[arg-type]
