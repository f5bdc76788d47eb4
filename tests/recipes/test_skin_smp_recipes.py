"""recipes/skin/ with smp and ConvNeXt encoders run as written, on tiny overrides (YAML only).

The teacher recipe (smp ResNet-34 + smp U-Net) trains 2 steps from a local encoder weights file;
its checkpoint is then the online teacher of the student recipe, whose student and frozen
alignment target load the same local file. The ConvNeXt + DPT teacher recipe runs the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("segmentation_models_pytorch")

from da_toolkit.cli.lightning_cli import run_lightning_cli
from da_toolkit.models.decoders import DPTDecoder, SmpDecoder
from da_toolkit.models.encoders import ConvNeXtEncoder, SmpEncoder
from tests.recipes.conftest import RECIPES, tiny_trainer, write

SKIN = RECIPES / "skin"


def _data(n: int = 4, seed: int = 0, labeled: bool = True) -> dict:
    return {"class_path": "synthetic", "init_args": {"length": n, "size": [64, 80], "seed": seed, "labeled": labeled}}


def _loader_args() -> dict:
    return {"crop_size": 64, "batch_size": 2, "num_workers": 0}


#: the shipped resnet34 is swapped for a tiny smp encoder on the command line (as a user would)
TINY = "tu-mobilenetv3_small_050"


def _encoder_file(tmp_path: Path) -> tuple[str, SmpEncoder]:
    """A local encoder weights file (stands for ImageNet or in-domain weights)."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    enc = SmpEncoder(TINY, levels=[1, 2, 3, 4, 5])
    path = tmp_path / "encoder_local.safetensors"
    save_file({k: v.contiguous() for k, v in enc.body.state_dict().items()}, str(path))
    return str(path), enc


@pytest.mark.parametrize("name", ["teacher_smp_unet.yaml", "student_smp_unet.yaml", "teacher_convnext_dpt.yaml"])
def test_recipes_mark_their_local_paths(name: str) -> None:
    text = (SKIN / name).read_text()
    cfg = yaml.safe_load(text)
    assert "FILL_ME" in text

    def weights_values(node: object) -> list[object]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "weights"] + [
                w for v in node.values() for w in weights_values(v)]
        return [w for v in node for w in weights_values(v)] if isinstance(node, list) else []

    values = weights_values(cfg)
    assert values and all(isinstance(v, str) and v.startswith("FILL_ME/") for v in values), values
    model = cfg["model"]["init_args"]["model"]
    assert model["class_path"] == "DepthModel"
    assert cfg["data"]["init_args"]["crop_size"] % 32 == 0


@pytest.mark.slow  # 135 s measured on the shared 2-core machine at load ~10 (two Lightning fits)
def test_smp_teacher_then_student_recipes_run(tmp_path: Path) -> None:
    weights, reference = _encoder_file(tmp_path)
    enc = "--model.init_args.model.init_args.encoder.init_args"
    enc_args = [f"{enc}.name={TINY}", f"{enc}.weights={weights}"]
    override = {"trainer": tiny_trainer(tmp_path / "teacher"),
                "data": {"init_args": {"labeled": [_data()], "val": [_data(1, seed=9)], **_loader_args()}}}
    cli = run_lightning_cli(["fit", "--config", str(SKIN / "teacher_smp_unet.yaml"),
                             "--config", write(tmp_path / "t.yaml", override), *enc_args])
    model = cli.model.model
    assert cli.trainer.global_step == 2 and "val/abs_rel" in cli.trainer.callback_metrics
    assert isinstance(model.encoder, SmpEncoder) and model.encoder.name == TINY
    assert isinstance(model.decoder, SmpDecoder) and model.decoder.architecture == "unet"
    assert model.encoder.reductions == [2, 4, 8, 16, 32]
    teacher_ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    assert teacher_ckpt.is_file()

    override = {"trainer": tiny_trainer(tmp_path / "student"),
                "data": {"init_args": {"labeled": [_data()], "unlabeled": [_data(4, seed=5, labeled=False)],
                                        "val": [_data(1, seed=9)], **_loader_args()}}}
    cli = run_lightning_cli(["fit", "--config", str(SKIN / "student_smp_unet.yaml"),
                             "--config", write(tmp_path / "s.yaml", override), *enc_args,
                             f"--model.init_args.teacher={teacher_ckpt}",
                             f"--model.init_args.frozen_encoder.init_args.name={TINY}",
                             f"--model.init_args.frozen_encoder.init_args.weights={weights}"])
    task = cli.model
    assert cli.trainer.global_step == 2
    assert {"train/labeled", "train/unlabeled", "train/feature"} <= set(cli.trainer.callback_metrics)
    assert isinstance(task.teacher.decoder, SmpDecoder)  # rebuilt from the teacher checkpoint alone
    assert isinstance(task.frozen_encoder, SmpEncoder)
    # the frozen alignment target holds the local file's tensors, untouched by training
    frozen = task.frozen_encoder.body.state_dict()
    for key, value in reference.body.state_dict().items():
        torch.testing.assert_close(frozen[key], value)


@pytest.mark.slow  # 48 s measured on the shared 2-core machine at load ~10
def test_convnext_dpt_teacher_recipe_runs(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    local = tmp_path / "convnext_atto_local.safetensors"  # a timm checkpoint (stands for ImageNet weights)
    save_file({k: v.contiguous() for k, v in timm.create_model("convnext_atto").state_dict().items()}, str(local))
    override = {"trainer": tiny_trainer(tmp_path / "run"),
                "data": {"init_args": {"labeled": [_data()], "val": [_data(1, seed=9)], **_loader_args()}}}
    cli = run_lightning_cli(["fit", "--config", str(SKIN / "teacher_convnext_dpt.yaml"),
                             "--config", write(tmp_path / "o.yaml", override),
                             "--model.init_args.model.init_args.encoder.init_args.variant=atto",
                             f"--model.init_args.model.init_args.encoder.init_args.weights={local}"])
    model = cli.model.model
    assert cli.trainer.global_step == 2
    assert isinstance(model.encoder, ConvNeXtEncoder) and isinstance(model.decoder, DPTDecoder)
    assert model.decoder.resize_factors == [1.0, 1.0, 1.0, 1.0]
