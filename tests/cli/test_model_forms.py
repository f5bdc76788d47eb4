"""Model short forms expanded before parsing: presets, {preset, ...}, self-describing files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from da_toolkit.cli.lightning_cli import preprocess_args, run_lightning_cli
from da_toolkit.cli.model_forms import ModelFormError, expand_model_value, model_parameters

REPO = Path(__file__).resolve().parents[2]


def _saved_tiny(path: Path, seed: int = 0) -> str:
    from da_toolkit.models.description import build_model
    from da_toolkit.models.weights import save_weights

    torch.manual_seed(seed)
    save_weights(build_model("tiny"), path)
    return str(path)


def test_model_typed_parameters_come_from_the_signatures() -> None:
    from da_toolkit.tasks import MetricTask, PseudoLabelTask, StudentTask, TeacherTask

    assert model_parameters(TeacherTask) == ("model",)
    assert model_parameters(MetricTask) == ("model",)
    assert set(model_parameters(StudentTask)) == {"model", "teacher"}
    assert model_parameters(PseudoLabelTask) == ("teacher",)


def test_short_forms_expand_to_the_full_description(tmp_path: Path) -> None:
    from da_toolkit.models.encoders.dinov2 import DINOv2Encoder

    full = expand_model_value("tiny", "m")
    assert full["class_path"] == "da_toolkit.models.depth_model.DepthModel"
    enc = full["init_args"]["encoder"]
    assert enc["class_path"] == f"{DINOv2Encoder.__module__}.DINOv2Encoder"
    assert enc["init_args"]["embed_dim"] == 32 and enc["init_args"]["patch_size"] == 14  # defaults filled in
    metric = expand_model_value({"preset": "tiny", "decoder": {"max_depth": 20.0}, "encoder_weights": "e.pth"}, "m")
    assert metric["init_args"]["decoder"]["init_args"]["max_depth"] == 20.0
    assert metric["init_args"]["encoder_weights"] == "e.pth"
    # a file that records its model: its description, its weights
    path = _saved_tiny(tmp_path / "t.safetensors")
    from_file = expand_model_value(path, "model.init_args.teacher")
    assert from_file["init_args"]["weights"] == path
    assert from_file["init_args"]["encoder"]["init_args"]["embed_dim"] == 32
    assert expand_model_value({"weights": path}, "m") == from_file


@pytest.mark.parametrize(("value", "message"), [
    ("tinyy", "model.init_args.model: unknown model preset 'tinyy'"),
    ("missing/teacher.ckpt", "model.init_args.model: weights file missing/teacher.ckpt does not exist"),
    ({"presett": "tiny"}, "model.init_args.model: a model is a preset name"),
])
def test_bad_short_forms_name_the_key(value, message: str) -> None:
    with pytest.raises(ModelFormError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_model_value(value, "model.init_args.model")


def test_command_line_values_of_model_parameters_are_expanded(tmp_path: Path) -> None:
    out = preprocess_args(["fit", "--model.init_args.teacher", "tiny", "--model.init_args.model=tiny",
                           "--trainer.max_steps", "3"], str(tmp_path))
    assert out[0] == "fit" and out[-2:] == ["--trainer.max_steps", "3"]
    for arg in out[1:3]:
        key, _, value = arg.partition("=")
        assert key in ("--model.init_args.teacher", "--model.init_args.model")
        desc = yaml.safe_load(value)
        assert desc["init_args"]["encoder"]["init_args"]["embed_dim"] == 32


def test_an_override_config_replaces_a_missing_recipe_file(tmp_path: Path) -> None:
    """A recipe's FILL_ME teacher file is no error when a later config gives the teacher."""
    weights = _saved_tiny(tmp_path / "t.safetensors")
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"model": {"teacher": "FILL_ME/teacher.ckpt"}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"model": {"teacher": weights}}))
    from da_toolkit.tasks import PseudoLabelTask

    groups = {"model": PseudoLabelTask}
    args = preprocess_args(["--config", str(tmp_path / "a.yaml"), "--config", str(tmp_path / "b.yaml")],
                           str(tmp_path), groups)
    assert len(args) == 2
    with pytest.raises(ModelFormError, match="FILL_ME/teacher.ckpt does not exist"):
        preprocess_args(["--config", str(tmp_path / "a.yaml")], str(tmp_path), groups)


def test_print_config_of_the_student_recipe_shows_encoder_and_decoder_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--config", str(REPO / "recipes" / "student.yaml"), "--print_config"])
    assert exc.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    model = printed["model"]["init_args"]["model"]
    assert model["class_path"] == "da_toolkit.models.depth_model.DepthModel"
    encoder, decoder = model["init_args"]["encoder"], model["init_args"]["decoder"]
    assert encoder["class_path"].endswith("DINOv2Encoder") and decoder["class_path"].endswith("DPTDecoder")
    assert encoder["init_args"]["embed_dim"] == 384 and encoder["init_args"]["patch_size"] == 14
    assert decoder["init_args"]["out_channels"] == [48, 96, 192, 384] and "use_bn" in decoder["init_args"]


def test_a_misspelled_encoder_argument_is_a_parser_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--config", str(REPO / "recipes" / "student.yaml"),
                           "--model.init_args.model.init_args.encoder.init_args.embed_dimm=32", "--print_config"])
    assert exc.value.code == 2
    assert "embed_dimm" in capsys.readouterr().err
