"""The example plugin package ``plugins/da-toolkit-dermoscopy`` installs with pip and works.

The package is built and installed once per module with ``pip install --no-deps
--no-build-isolation --no-index --target <tmp>`` (offline, into a temporary site folder): the
shared environment is never modified, so nothing needs uninstalling and an interrupted run
leaves nothing behind. Subprocesses get the folder on ``PYTHONPATH``, which is how Python finds
installed distributions and their entry points. The plugin's own test suite is run against that
installed copy, so CI (``pytest`` with ``testpaths = tests``) runs it too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit import plugins
from da_toolkit.cli.plugins import format_registry
from tests.plugin_install import install_to_target

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "da-toolkit-dermoscopy"
DIST = "da-toolkit-dermoscopy"
PLUGIN_ENV = ("DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD", "DA_TOOLKIT_BLOCK_PLUGINS", "DA_TOOLKIT_PLUGINS")


def env_with(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLUGIN_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def da_toolkit_command() -> list[str]:
    script = Path(sys.executable).with_name("da-toolkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "da_toolkit.cli"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_to_target(PLUGIN_DIR, tmp_path_factory.mktemp("dermoscopy-install"))


def test_installed_distribution_declares_the_entry_point(site: Path) -> None:
    (dist_info,) = site.glob("da_toolkit_dermoscopy-*.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[da_toolkit]" in entry_points and "dermoscopy = da_toolkit_dermoscopy.plugin" in entry_points
    assert (site / "da_toolkit_dermoscopy" / "plugin.py").exists()


def test_components_listed_by_da_toolkit_plugins(site: Path) -> None:
    done = subprocess.run(
        [*da_toolkit_command(), "plugins", "--json"], capture_output=True, text=True, env=env_with(site), timeout=300
    )
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["plugins"]["dermoscopy"] == DIST
    assert listing["components"]["datasources"]["dermoscopy_images"] == {
        "class_path": "da_toolkit_dermoscopy.source.DermoscopyImages",
        "plugin": "dermoscopy",
        "distribution": DIST,
        "conflict": False,
    }
    assert listing["components"]["perturbations"]["hair_artefacts"]["plugin"] == "dermoscopy"
    for kind, name, class_path in [
        ("encoders", "dermoscopy_cnn", "da_toolkit_dermoscopy.encoder.LesionCNN"),
        ("losses", "dermoscopy_cutmix_scale_shift_l1", "da_toolkit_dermoscopy.losses.CutMixScaleShiftL1Loss"),
        ("datasources", "dermoscopy_rgbd", "da_toolkit_dermoscopy.rgbd.RGBDFolder"),
    ]:
        assert listing["components"][kind][name]["class_path"] == class_path, (kind, name)
    assert [f for f in listing["failures"] if f["plugin"] == "dermoscopy"] == []



def test_plugin_own_test_suite_passes_against_installed_copy(site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN_DIR / "tests")],
        capture_output=True, text=True, env=env_with(site), cwd=str(site.parent), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 30, done.stdout[-2000:]
    assert "failed" not in done.stdout and "skipped" not in done.stdout


def test_usable_in_process_through_the_registry(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PLUGIN_ENV:
        monkeypatch.delenv(var, raising=False)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(images / f"ISIC_{i:07d}.png")
    (tmp_path / "meta.csv").write_text("isic_id,sex\nISIC_0000000,male\nISIC_0000001,female\nISIC_0000002,male\n")
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    try:
        source_cls = plugins.get_component("datasources", "dermoscopy_images")
        assert source_cls.__module__ == "da_toolkit_dermoscopy.source"
        assert Path(sys.modules[source_cls.__module__].__file__).is_relative_to(site)  # the installed copy
        source = source_cls(images, tmp_path / "meta.csv", include={"sex": "male"})
        assert [s["meta"]["id"] for s in source] == ["ISIC_0000000", "ISIC_0000002"]
        assert int(source[1]["image"][0, 0, 0]) == 80
        listing = format_registry(plugins.get_registry(), "perturbations")
        assert re.search(
            r"hair_artefacts +da_toolkit_dermoscopy\.hair\.HairArtefacts +\[dermoscopy, da-toolkit-dermoscopy\]", listing
        ), listing
        hair_cls = plugins.get_component("perturbations", "hair_artefacts")
        import torch

        out = hair_cls(p=1.0, seed=0)(torch.ones(2, 3, 16, 16))
        assert out.shape == (2, 3, 16, 16) and float(out.min()) < 1.0
        monkeypatch.setenv("DA_TOOLKIT_BLOCK_PLUGINS", "dermoscopy")
        blocked = plugins.build_registry()
        assert "dermoscopy_images" not in blocked.kind("datasources") and blocked.blocked == ["dermoscopy"]
    finally:
        for name in [m for m in sys.modules if m == "da_toolkit_dermoscopy" or m.startswith("da_toolkit_dermoscopy.")]:
            del sys.modules[name]
        plugins.reset()
