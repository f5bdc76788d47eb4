"""A command-line ``null`` two or more class levels deep is ``None``, not the text ``"None"``.

jsonargparse 4.53 hands such a value to the inner class's parser as ``f"--key={value}"`` after the
outer level loaded it as YAML, so ``--model.init_args.model.init_args.encoder.init_args.weights=null``
gave an encoder the weights path ``"None"`` (and a ``float | None`` was refused);
:func:`da_toolkit.cli.lightning_cli.keep_nested_values` fixes that for every da-toolkit command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from da_toolkit.cli.lightning_cli import keep_nested_values, run_lightning_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class Leaf:
    def __init__(self, weights: str | None = "w.pth", scale: float | None = 2.0, taps: list[int] | None = None,
                 name: str = "leaf") -> None:
        self.weights, self.scale, self.taps, self.name = weights, scale, taps, name


class Middle:
    def __init__(self, leaf: Leaf, weights: str | None = "m.pth") -> None:
        self.leaf, self.weights = leaf, weights


class Top:
    def __init__(self, middle: Middle, k: int = 0) -> None:
        self.middle, self.k = middle, k


def _parse(*extra: str):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--top", type=Top)
    return parser.parse_args(["--top", f"{__name__}.Top", "--top.middle", f"{__name__}.Middle",
                              "--top.middle.leaf", f"{__name__}.Leaf", *extra]).top.init_args


def test_nested_values_keep_their_yaml_type():
    keep_nested_values()
    keep_nested_values()  # idempotent
    cfg = _parse("--top.middle.init_args.weights=null", "--top.middle.init_args.leaf.init_args.weights=null",
                 "--top.middle.leaf.scale=null", "--top.middle.leaf.taps=[1, 2]", "--top.middle.leaf.name=null",
                 "--top.k=3")
    middle = cfg.middle.init_args
    leaf = middle.leaf.init_args
    assert middle.weights is None and leaf.weights is None and leaf.scale is None
    assert leaf.taps == [1, 2] and cfg.k == 3
    one_level = ArgumentParser(exit_on_error=False)
    one_level.add_argument("--leaf", type=Leaf)
    direct = one_level.parse_args(["--leaf", f"{__name__}.Leaf", "--leaf.name=null"]).leaf.init_args
    assert leaf.name == direct.name  # a `str` parameter: as jsonargparse treats it one level deep
    assert _parse("--top.middle.leaf.init_args.weights=x.pth").middle.init_args.leaf.init_args.weights == "x.pth"


def test_predict_null_weights_on_the_command_line_is_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(RECIPES / "infer.yaml"), "--trainer.accelerator", "cpu",
            "--model.model", "{preset: tiny, weights: nowhere.safetensors, decoder: {max_depth: 10.0}}",
            "--model.model.init_args.weights=null",  # 2 class levels: the task, the model
            "--model.model.init_args.decoder.init_args.max_depth=null",  # 3 levels, float | None
            "--model.allow_random_weights", "true"]
    cli = run_lightning_cli(args, run=False)
    model = cli.config.model.init_args.model.init_args
    assert model.weights is None and model.decoder.init_args.max_depth is None
    assert cli.model.model.output_kind == "disparity" and not cli.model.model.weights_loaded


@pytest.mark.parametrize("value", ["null", "~"])
def test_null_spellings(value):
    keep_nested_values()
    assert _parse(f"--top.middle.leaf.init_args.weights={value}").middle.init_args.leaf.init_args.weights is None
