"""The plugin registers its components through da-toolkit's hooks, as declared in pyproject.toml."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

import da_toolkit_dermoscopy
from da_toolkit import plugins
from da_toolkit_dermoscopy import plugin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_declares_the_entry_point() -> None:
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["entry-points"]["da_toolkit"] == {"dermoscopy": "da_toolkit_dermoscopy.plugin"}


def test_hooks_register_components_without_failures() -> None:
    ep = metadata.EntryPoint(name="dermoscopy", value="da_toolkit_dermoscopy.plugin", group="da_toolkit")
    reg = plugins.build_registry(entry_points=[ep])
    assert [f for f in reg.failures if f.plugin == "dermoscopy"] == []
    assert reg.get("datasources", "dermoscopy_images") is da_toolkit_dermoscopy.DermoscopyImages
    assert reg.get("perturbations", "hair_artefacts") is da_toolkit_dermoscopy.HairArtefacts
    assert reg.get("perturbations", "illumination_shift") is da_toolkit_dermoscopy.IlluminationShift
    assert reg.kind("perturbations")["hair_artefacts"].plugin == "dermoscopy"
    assert reg.get("encoders", "dermoscopy_cnn") is da_toolkit_dermoscopy.LesionCNN
    assert reg.get("losses", "dermoscopy_scale_shift_l1") is da_toolkit_dermoscopy.ScaleShiftL1Loss
    assert reg.get("losses", "dermoscopy_cutmix_scale_shift_l1") is da_toolkit_dermoscopy.CutMixScaleShiftL1Loss
    assert reg.get("datasources", "dermoscopy_rgbd") is da_toolkit_dermoscopy.RGBDFolder


def test_hook_functions_return_fresh_mappings() -> None:
    assert plugin.da_toolkit_datasources() == {
        "dermoscopy_images": da_toolkit_dermoscopy.DermoscopyImages,
        "dermoscopy_rgbd": da_toolkit_dermoscopy.RGBDFolder,
    }
    assert plugin.da_toolkit_encoders() == {"dermoscopy_cnn": da_toolkit_dermoscopy.LesionCNN}
    assert set(plugin.da_toolkit_losses()) == {"dermoscopy_scale_shift_l1", "dermoscopy_cutmix_scale_shift_l1"}
    assert plugin.da_toolkit_perturbations() == {
        "hair_artefacts": da_toolkit_dermoscopy.HairArtefacts,
        "illumination_shift": da_toolkit_dermoscopy.IlluminationShift,
    }
