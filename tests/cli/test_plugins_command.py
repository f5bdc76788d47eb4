"""``da-toolkit plugins``: listing by kind with plugin/distribution, conflicts and failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from da_toolkit import cli, hookimpl, plugins
from da_toolkit.cli import plugins as command
from da_toolkit.models.encoders.base import Encoder
from da_toolkit.plugins import AUTOLOAD_ENV, BLOCK_ENV, EXTRA_ENV


class CmdEncoder(Encoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class CmdOtherEncoder(Encoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


class CmdLoss(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (pred - target)[mask].abs().mean()


class _Dist:
    def __init__(self, name: str) -> None:
        self.name = name


class _EntryPoint:
    def __init__(self, name: str, obj: object, dist: str, error: Exception | None = None) -> None:
        self.name, self._obj, self.dist, self._error = name, obj, _Dist(dist), error

    def load(self) -> object:
        if self._error is not None:
            raise self._error
        return self._obj


class _PluginA:
    @hookimpl
    def da_toolkit_encoders(self) -> dict[str, type]:
        return {"cmd_enc": CmdEncoder, "cmd_dup": CmdEncoder}

    @hookimpl
    def da_toolkit_losses(self) -> dict[str, type]:
        return {"cmd_loss": CmdLoss}


class _PluginB:
    @hookimpl
    def da_toolkit_encoders(self) -> dict[str, type]:
        return {"cmd_dup": CmdOtherEncoder}


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> plugins.Registry:
    for var in (AUTOLOAD_ENV, BLOCK_ENV, EXTRA_ENV):
        monkeypatch.delenv(var, raising=False)
    eps = [
        _EntryPoint("alpha", _PluginA(), "alpha-dist"),
        _EntryPoint("beta", _PluginB(), "beta-dist"),
        _EntryPoint("gamma", None, "gamma-dist", ImportError("cannot import name 'Foo' from 'bar'")),
    ]
    reg = plugins.build_registry(entry_points=eps)
    monkeypatch.setattr(plugins, "_REGISTRY", reg)
    yield reg
    plugins.reset()


def test_text_listing_by_kind_with_origin_conflicts_and_failures(
    fake_registry: plugins.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.main([]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # every kind has a header with its count
    for kind in ("datasources", "decoders", "encoders", "losses", "metrics", "perturbations", "writers"):
        count = len(fake_registry.kind(kind))
        assert f"{kind} ({count}):" in lines
    enc_line = next(line for line in lines if line.strip().startswith("cmd_enc "))
    assert f"{__name__}.CmdEncoder" in enc_line and enc_line.endswith("[alpha, alpha-dist]")
    loss_block = lines[lines.index(f"losses ({len(fake_registry.kind('losses'))}):") :]
    assert any(line.strip().startswith("cmd_loss ") for line in loss_block)
    dup_line = next(line for line in lines if line.strip().startswith("cmd_dup "))
    assert "CONFLICT" in dup_line and "[alpha, alpha-dist]" in dup_line and "[beta, beta-dist]" in dup_line
    assert f"failed plugins ({len(fake_registry.failures)}):" in lines
    assert any(line.startswith("  gamma (gamma-dist): failed to load: ImportError") for line in lines)
    assert any("beta (beta-dist)" in line and "'alpha'" in line for line in lines)
    assert any(line.startswith("plugins: ") and "alpha, alpha-dist" in line for line in lines)


def test_json_listing(fake_registry: plugins.Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["components"]["encoders"]["cmd_enc"] == {
        "class_path": f"{__name__}.CmdEncoder",
        "plugin": "alpha",
        "distribution": "alpha-dist",
        "conflict": False,
    }
    assert data["components"]["encoders"]["cmd_dup"]["conflict"] is True
    assert data["conflicts"] == [{"kind": "encoders", "name": "cmd_dup", "plugins": ["alpha", "beta"]}]
    assert {f["plugin"] for f in data["failures"]} - {"builtin"} == {"gamma", "beta"}
    assert data["plugins"] == {"alpha": "alpha-dist", "beta": "beta-dist", "builtin": "da-toolkit"}


def test_kind_filter_and_strict(fake_registry: plugins.Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--kind", "losses", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["components"]) == ["losses"] and "cmd_loss" in data["components"]["losses"]
    assert command.main(["--strict"]) == 1  # failures present
    capsys.readouterr()
    with pytest.raises(SystemExit):
        command.main(["--kind", "nonsense"])


def test_strict_passes_without_failures(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    reg = plugins.build_registry(entry_points=[_EntryPoint("alpha", _PluginA(), "alpha-dist")])
    assert reg.failures == []
    monkeypatch.setattr(plugins, "_REGISTRY", reg)
    try:
        assert command.main(["--strict"]) == 0
        assert "failed plugins" not in capsys.readouterr().out
    finally:
        plugins.reset()


def test_cli_dispatches_plugins_command(fake_registry: plugins.Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--kind", "encoders"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"encoders ({len(fake_registry.kind('encoders'))}):") and "cmd_enc" in out
    assert "losses (" not in out


def test_subprocess_listing_with_env_plugins_failure_and_blocking(tmp_path: Path) -> None:
    """The real command in a fresh process: module plugins named in DA_TOOLKIT_PLUGINS (autoload
    off), one that fails to import and one blocked by name."""
    plugin_code = (
        "from torch import nn\n"
        "from da_toolkit import hookimpl\n"
        "class {cls}(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x\n"
        "@hookimpl\n"
        "def da_toolkit_perturbations():\n"
        "    return {{'{name}': {cls}}}\n"
    )
    (tmp_path / "cmd_env_plugin.py").write_text(plugin_code.format(cls="EnvPerturb", name="env_perturb"))
    (tmp_path / "cmd_blocked_plugin.py").write_text(plugin_code.format(cls="BlockedPerturb", name="blocked_perturb"))
    (tmp_path / "cmd_broken_plugin.py").write_text("raise RuntimeError('broken on purpose')\n")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")])),
        **{
            AUTOLOAD_ENV: "1",
            EXTRA_ENV: "cmd_env_plugin,cmd_broken_plugin,cmd_blocked_plugin",
            BLOCK_ENV: "cmd_blocked_plugin",
        },
    )
    run = [sys.executable, "-m", "da_toolkit.cli", "plugins"]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "env_perturb" in out and "cmd_env_plugin.EnvPerturb  [cmd_env_plugin]" in out
    assert "cmd_broken_plugin: failed to load: RuntimeError: broken on purpose" in out
    assert "third-party autoload disabled" in out
    assert "blocked_perturb" not in out and "blocked (DA_TOOLKIT_BLOCK_PLUGINS): cmd_blocked_plugin" in out
    assert "color_jitter" in out  # built-ins unaffected
