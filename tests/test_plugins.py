"""Plugin manager and registry: hooks, entry-point autoload, blocking, broken plugins, clashes.

Unit tests use fake entry points (objects with ``name``, ``load()`` and ``dist``), as pluggy and
pytest do; one test builds and installs a real throwaway plugin package with pip (offline).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import types
from importlib import metadata
from pathlib import Path

import pluggy
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import da_toolkit
from da_toolkit import builtin, hookspecs, plugins
from da_toolkit.models.encoders.base import Encoder
from da_toolkit.plugins import (
    AUTOLOAD_ENV,
    BLOCK_ENV,
    EXTRA_ENV,
    PluginConflictError,
    UnknownComponentError,
    build_plugin_manager,
    build_registry,
)
from tests.plugin_install import pip_install_target

# --------------------------------------------------------------------------- helpers


class FakeDist:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint; counts loads."""

    def __init__(self, name: str, obj: object = None, dist: str | None = "fake-dist", error: Exception | None = None):
        self.name = name
        self.value = f"fake_{name}"
        self.group = plugins.ENTRY_POINT_GROUP
        self.dist = FakeDist(dist) if dist else None
        self._obj = obj
        self._error = error
        self.loads = 0

    def load(self) -> object:
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._obj


class TinyEncoder(Encoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class OtherEncoder(Encoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class TinyLoss(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()[mask].mean()


class TinySource(Dataset):
    def __len__(self) -> int:
        return 0


def make_plugin(**hooks: object) -> types.SimpleNamespace:
    """A plugin object whose hook ``da_toolkit_<kind>`` returns ``hooks[kind]`` (a callable is
    called instead, to raise)."""
    ns = types.SimpleNamespace()
    for kind, value in hooks.items():

        def impl(value: object = value) -> object:
            return value() if callable(value) and not isinstance(value, type) else value

        # pluggy reads the hook arguments from the signature: expose a zero-argument function
        fn = hookspecs.hookimpl(lambda value=value: impl(value))
        fn.__name__ = f"da_toolkit_{kind}"
        setattr(ns, f"da_toolkit_{kind}", fn)
    return ns


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for var in (AUTOLOAD_ENV, BLOCK_ENV, EXTRA_ENV):
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def own(reg: plugins.Registry, kind: str, plugin: str) -> set[str]:
    """Names of ``kind`` registered by ``plugin`` (built-ins vary while the toolkit grows)."""
    return {name for name, comp in reg.kind(kind).items() if comp.plugin == plugin}


def plugin_failures(reg: plugins.Registry) -> list[plugins.PluginFailure]:
    """Failures of the plugins under test (the built-in one has its own test)."""
    return [f for f in reg.failures if f.plugin != plugins.BUILTIN_NAME]


def failure_texts(reg: plugins.Registry) -> list[str]:
    return [f"{f.plugin}|{f.distribution}|{f.error}" for f in reg.failures]


# --------------------------------------------------------------------------- hooks and builtin


def test_hookimpl_marker_is_importable_from_package() -> None:
    from da_toolkit import hookimpl

    assert hookimpl is hookspecs.hookimpl

    @hookimpl
    def da_toolkit_losses() -> dict[str, type]:
        return {}

    assert hasattr(da_toolkit_losses, f"{hookspecs.PROJECT_NAME}_impl")


def test_hookspecs_declare_the_documented_hooks() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for hook in (
        "da_toolkit_encoders",
        "da_toolkit_decoders",
        "da_toolkit_perturbations",
        "da_toolkit_losses",
        "da_toolkit_datasources",
        "da_toolkit_metrics",
        "da_toolkit_writers",
    ):
        caller = getattr(pm.hook, hook)
        assert caller.spec is not None, hook
        assert caller.spec.argnames == (), f"{hook} must take no arguments"
        assert caller.spec.function.__doc__, f"{hook} must document its contract"
    assert {k.hook for k in builtin.KINDS} == {n for n in dir(hookspecs) if n.startswith("da_toolkit_")}
    assert len({k.name for k in builtin.KINDS}) == len(builtin.KINDS)
    assert plugins.kind_names() == sorted(k.name for k in builtin.KINDS)


def test_kinds_table_holds_the_real_base_classes() -> None:
    from lightning.pytorch.callbacks import BasePredictionWriter
    from torchmetrics import Metric

    from da_toolkit.models.decoders.base import Decoder
    from da_toolkit.models.encoders.base import Encoder

    bases = {k.name: k.base for k in builtin.KINDS}
    assert bases == {
        "encoders": Encoder,
        "decoders": Decoder,
        "perturbations": nn.Module,
        "losses": nn.Module,
        "datasources": Dataset,
        "metrics": Metric,
        "writers": BasePredictionWriter,
    }


def test_builtin_plugin_names_no_modules_by_string() -> None:
    """The built-in hooks import their classes (no module/attribute strings), and importing the
    built-in plugin imports no component package."""
    source = Path(builtin.__file__).read_text()
    assert "import_module" not in source and "getattr(" not in source
    done = subprocess.run(
        [sys.executable, "-c", "import sys, da_toolkit.builtin, da_toolkit.plugins; "
         "print(sorted(m for m in sys.modules if m.startswith(('da_toolkit.', 'torch', 'lightning'))))"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(done.stdout.replace("'", '"')) == ["da_toolkit.builtin", "da_toolkit.hookspecs", "da_toolkit.plugins"]


def test_builtin_is_an_ordinary_plugin_using_the_same_hooks() -> None:
    pm, failures, dists = build_plugin_manager(entry_points=[])
    assert pm.get_plugin(plugins.BUILTIN_NAME) is builtin
    assert dists[plugins.BUILTIN_NAME] == "da-toolkit"
    implemented = {c.name for c in pm.get_hookcallers(builtin)}
    assert implemented == {k.hook for k in builtin.KINDS}, "builtin must implement every hook"
    assert failures == []


BUILTIN_DICTS = {
    "encoders": ("da_toolkit.models.encoders", "BUILTIN_ENCODERS"),
    "decoders": ("da_toolkit.models.decoders", "BUILTIN_DECODERS"),
    "perturbations": ("da_toolkit.perturb", "BUILTIN_PERTURBATIONS"),
    "losses": ("da_toolkit.losses", "BUILTIN_LOSSES"),
    "datasources": ("da_toolkit.data.sources", "BUILTIN_DATASOURCES"),
    "metrics": ("da_toolkit.metrics", "BUILTIN_METRICS"),
    "writers": ("da_toolkit.inference.writers", "BUILTIN_WRITERS"),
}


def test_builtin_components_all_registered_without_failures() -> None:
    reg = build_registry(entry_points=[])
    assert reg.failures == [], failure_texts(reg)
    for kind, (module, attr) in BUILTIN_DICTS.items():
        expected = dict(getattr(importlib.import_module(module), attr))
        if kind == "datasources":  # the streaming ones live in data.shards (no sources <-> shards cycle)
            expected.update(importlib.import_module("da_toolkit.data.shards").BUILTIN_SHARD_SOURCES)
        got = reg.kind(kind)
        assert set(got) == set(expected), kind
        for name, comp in got.items():
            assert comp.cls is expected[name]
            assert comp.class_path == f"{expected[name].__module__}.{expected[name].__qualname__}"  # the defining module
            assert (comp.plugin, comp.distribution) == ("builtin", "da-toolkit")


def test_a_class_reference_is_imported_when_first_used_and_checked_then() -> None:
    plug = make_plugin(losses={"ref_loss": f"{__name__}:TinyLoss", "wrong_base": f"{__name__}:FakeEntryPoint",
                               "missing": "no_such_module_xyz:Loss", "bad_form": "not a reference"})
    reg = build_registry(entry_points=[FakeEntryPoint("refs", plug)])
    comps = reg.kind("losses")
    assert comps["ref_loss"].class_path == f"{__name__}.TinyLoss" and comps["ref_loss"].cls is TinyLoss
    assert "bad_form" not in comps
    assert any("'package.module:ClassName'" in f.error for f in plugin_failures(reg))
    with pytest.raises(plugins.PluginError, match="'refs'.*no_such_module_xyz"):
        reg.get("losses", "missing")
    with pytest.raises(plugins.PluginError, match="must subclass torch.nn.Module"):
        _ = comps["wrong_base"].cls
    failed = reg.import_all()  # `da-toolkit plugins --strict`
    assert {f.component for f in failed} == {"missing", "wrong_base"} and "missing" not in reg.kind("losses")


def test_listing_every_kind_imports_neither_torch_nor_lightning() -> None:
    """`da-toolkit plugins` (issue 14.8): the built-in plugin registers references, so the full
    listing imports no heavy package (it took 5-9 s, mostly torchmetrics and Lightning)."""
    code = ("import sys, io, contextlib\n"
            "from da_toolkit.cli.plugins import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    main([])\n"
            "assert 'depth_metrics' in out.getvalue() and 'npy' in out.getvalue()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'lightning', 'torchmetrics', 'torchvision', 'timm', 'numpy'))\n"
            "print(heavy)\n")
    env = {k: v for k, v in os.environ.items() if k not in (plugins.EXTRA_ENV,)}
    env[plugins.AUTOLOAD_ENV] = "1"  # only the built-in plugin: installed test plugins may import torch
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_builtin_mapping_flows_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(builtin.BUILTIN_CLASSES["losses"], "zz_test_loss", TinyLoss)
    reg = build_registry(entry_points=[])
    assert reg.get("losses", "zz_test_loss") is TinyLoss
    assert reg.kind("losses")["zz_test_loss"].plugin == "builtin"


# --------------------------------------------------------------------------- entry points


def test_entry_point_plugin_registers_components() -> None:
    ep = FakeEntryPoint("good", make_plugin(encoders={"tiny": TinyEncoder}, losses={"tiny_l1": TinyLoss}), "good-dist")
    reg = build_registry(entry_points=[ep])
    assert reg.get("encoders", "tiny") is TinyEncoder
    comp = reg.kind("losses")["tiny_l1"]
    assert (comp.cls, comp.plugin, comp.distribution) == (TinyLoss, "good", "good-dist")
    assert comp.class_path == f"{__name__}.TinyLoss"
    assert reg.plugins == {"builtin": "da-toolkit", "good": "good-dist"}
    assert plugin_failures(reg) == [], failure_texts(reg)


def test_real_entry_point_object_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_da_plugin_mod")

    @hookspecs.hookimpl
    def da_toolkit_datasources() -> dict[str, type]:
        return {"tiny_src": TinySource}

    module.da_toolkit_datasources = da_toolkit_datasources
    monkeypatch.setitem(sys.modules, "fake_da_plugin_mod", module)
    ep = metadata.EntryPoint(name="realep", value="fake_da_plugin_mod", group=plugins.ENTRY_POINT_GROUP)
    reg = build_registry(entry_points=[ep])
    assert reg.get("datasources", "tiny_src") is TinySource
    assert reg.plugins["realep"] is None


@pytest.fixture
def installed_fake(monkeypatch: pytest.MonkeyPatch) -> FakeEntryPoint:
    """Make importlib.metadata report one fake installed entry point in group da_toolkit."""
    ep = FakeEntryPoint("auto", make_plugin(encoders={"auto_enc": TinyEncoder}), "auto-dist")
    real = metadata.entry_points

    def fake_entry_points(**kwargs: object):
        if kwargs.get("group") == plugins.ENTRY_POINT_GROUP:
            return [ep]
        return real(**kwargs)

    monkeypatch.setattr(plugins.metadata, "entry_points", fake_entry_points)
    return ep


def test_autoload_reads_installed_entry_points(installed_fake: FakeEntryPoint) -> None:
    assert plugins.get_component("encoders", "auto_enc") is TinyEncoder
    assert plugins.get_registry().usable("encoders")["auto_enc"] is TinyEncoder
    assert installed_fake.loads == 1
    plugins.get_component("encoders", "auto_enc")  # cached process-wide registry
    assert installed_fake.loads == 1


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_autoload_can_be_disabled(installed_fake: FakeEntryPoint, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    reg = build_registry()
    assert "auto_enc" not in reg.kind("encoders")
    assert installed_fake.loads == 0
    assert "builtin" in reg.plugins  # built-ins are not third-party: still there


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_autoload_enabled_values(installed_fake: FakeEntryPoint, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    assert "auto_enc" in build_registry().kind("encoders")


def test_plugin_module_named_in_env_loads_even_without_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_env_plugin")
    module.da_toolkit_losses = hookspecs.hookimpl(lambda: {"env_loss": TinyLoss})
    module.da_toolkit_losses.__name__ = "da_toolkit_losses"
    monkeypatch.setitem(sys.modules, "fake_env_plugin", module)
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    monkeypatch.setenv(EXTRA_ENV, "fake_env_plugin, missing_module_xyz")
    reg = build_registry()
    assert reg.get("losses", "env_loss") is TinyLoss
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "missing_module_xyz" and "ModuleNotFoundError" in fail.error


def test_blocked_plugin_is_not_even_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = FakeEntryPoint("blockme", make_plugin(encoders={"blocked_enc": TinyEncoder}))
    good = FakeEntryPoint("keepme", make_plugin(encoders={"kept_enc": OtherEncoder}))
    monkeypatch.setenv(BLOCK_ENV, "blockme, other")
    reg = build_registry(entry_points=[bad, good])
    assert bad.loads == 0
    assert "blocked_enc" not in reg.kind("encoders")
    assert reg.get("encoders", "kept_enc") is OtherEncoder
    assert "blockme" in reg.blocked and "blockme" not in reg.plugins


def test_builtin_cannot_be_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, "builtin")
    reg = build_registry(entry_points=[])
    assert "builtin" in reg.plugins and "builtin" not in reg.blocked


# --------------------------------------------------------------------------- broken plugins


def test_plugin_raising_on_import_is_reported_and_rest_works() -> None:
    broken = FakeEntryPoint("broken", error=ImportError("No module named 'cv3'"), dist="broken-dist")
    good = FakeEntryPoint("good", make_plugin(losses={"good_loss": TinyLoss}))
    reg = build_registry(entry_points=[broken, good])
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "broken" and fail.distribution == "broken-dist"
    assert "ImportError" in fail.error and "cv3" in fail.error
    assert reg.get("losses", "good_loss") is TinyLoss
    assert "broken" not in reg.plugins


def test_plugin_raising_any_exception_on_import_is_contained() -> None:
    broken = FakeEntryPoint("zerodiv", error=ZeroDivisionError("boom"))
    reg = build_registry(entry_points=[broken])
    assert [f.plugin for f in plugin_failures(reg)] == ["zerodiv"]
    assert "ZeroDivisionError: boom" in plugin_failures(reg)[0].error


def test_hook_raising_is_reported_other_hooks_of_plugin_still_work() -> None:
    def explode() -> dict:
        raise RuntimeError("kaputt")

    plug = make_plugin(encoders=explode, losses={"ok_loss": TinyLoss})
    reg = build_registry(entry_points=[FakeEntryPoint("half", plug)])
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "half" and "da_toolkit_encoders" in fail.error and "kaputt" in fail.error
    assert reg.get("losses", "ok_loss") is TinyLoss


@pytest.mark.parametrize("returned", [["tiny", TinyEncoder], "tiny", 3, (("tiny", TinyEncoder),)])
def test_hook_returning_non_mapping_is_reported(returned: object) -> None:
    plug = make_plugin(encoders=lambda: returned, losses={"ok_loss": TinyLoss})
    reg = build_registry(entry_points=[FakeEntryPoint("nodict", plug)])
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "nodict" and "must return a mapping" in fail.error
    assert type(returned).__name__ in fail.error
    assert "tiny" not in reg.kind("encoders")
    assert reg.get("losses", "ok_loss") is TinyLoss


def test_hook_returning_none_adds_nothing_without_failure() -> None:
    reg = build_registry(entry_points=[FakeEntryPoint("nothing", make_plugin(encoders=lambda: None))])
    assert plugin_failures(reg) == []


def test_non_class_and_wrong_base_values_are_rejected_individually() -> None:
    def not_a_class() -> None:
        return None

    plug = make_plugin(
        encoders={"fn": not_a_class, "ok": TinyEncoder, "ds": TinySource, "": TinyEncoder, "plain": TinyLoss},
    )
    reg = build_registry(entry_points=[FakeEntryPoint("mixed", plug)])
    assert own(reg, "encoders", "mixed") == {"ok"}
    errors = " ".join(f.error for f in plugin_failures(reg))
    assert "'fn' must be a class" in errors
    # the real base of the kind, not just nn.Module: a plain module is no encoder
    assert "TinySource must subclass da_toolkit.models.encoders.Encoder" in errors
    assert "TinyLoss must subclass da_toolkit.models.encoders.Encoder" in errors
    assert "non-empty strings" in errors
    assert len(plugin_failures(reg)) == 4
    with pytest.raises(UnknownComponentError, match=r"'plain'.*mixed.*TinyLoss must subclass"):
        reg.get("encoders", "plain")  # the refusal is named when the name is looked up


def test_datasource_must_be_a_dataset() -> None:
    plug = make_plugin(datasources={"src": TinySource, "mod": TinyLoss})
    reg = build_registry(entry_points=[FakeEntryPoint("srcs", plug)])
    assert own(reg, "datasources", "srcs") == {"src"}
    assert "torch.utils.data.Dataset" in plugin_failures(reg)[0].error


def test_misspelled_hook_is_reported_with_suggestion() -> None:
    plug = types.SimpleNamespace()
    fn = hookspecs.hookimpl(lambda: {"x": TinyEncoder})
    fn.__name__ = "da_toolkit_encoder"
    plug.da_toolkit_encoder = fn
    reg = build_registry(entry_points=[FakeEntryPoint("typo", plug)])
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "typo" and "'da_toolkit_encoder'" in fail.error
    assert "did you mean da_toolkit_encoders" in fail.error


def test_hook_with_arguments_is_refused_by_pluggy_and_reported() -> None:
    plug = types.SimpleNamespace()

    @hookspecs.hookimpl
    def da_toolkit_losses(config):  # noqa: ANN001, ANN202 - hooks take no arguments
        return {}

    plug.da_toolkit_losses = da_toolkit_losses
    good = FakeEntryPoint("good", make_plugin(losses={"ok_loss": TinyLoss}))
    reg = build_registry(entry_points=[FakeEntryPoint("args", plug), good])
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "args" and "not registered" in fail.error and "config" in fail.error
    assert reg.get("losses", "ok_loss") is TinyLoss


def test_same_plugin_name_from_two_distributions_is_reported() -> None:
    first = FakeEntryPoint("same", make_plugin(encoders={"a": TinyEncoder}), "dist-one")
    second = FakeEntryPoint("same", make_plugin(encoders={"b": OtherEncoder}), "dist-two")
    reg = build_registry(entry_points=[first, second])
    assert "a" in reg.kind("encoders") and "b" not in reg.kind("encoders")
    (fail,) = plugin_failures(reg)
    assert fail.distribution == "dist-two" and "dist-one" in fail.error
    assert second.loads == 0


# --------------------------------------------------------------------------- name clashes


def test_name_registered_twice_names_both_plugins_and_rest_works() -> None:
    one = FakeEntryPoint("one", make_plugin(encoders={"dup": TinyEncoder, "only_one": TinyEncoder}), "one-dist")
    two = FakeEntryPoint("two", make_plugin(encoders={"dup": OtherEncoder, "only_two": OtherEncoder}), "two-dist")
    reg = build_registry(entry_points=[one, two])
    with pytest.raises(PluginConflictError) as info:
        reg.get("encoders", "dup")
    message = str(info.value)
    assert "'one'" in message and "'two'" in message and "one-dist" in message and "two-dist" in message
    assert reg.get("encoders", "only_one") is TinyEncoder
    assert reg.get("encoders", "only_two") is OtherEncoder
    assert "dup" not in reg.usable("encoders") and "only_two" in reg.usable("encoders")
    assert [c.plugin for c in reg.conflicts[("encoders", "dup")]] == ["one", "two"]
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "two" and "'one'" in fail.error


def test_clash_with_builtin_name_is_an_error_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(builtin.BUILTIN_CLASSES["losses"], "zz_clash", TinyLoss)
    other = type("OtherLoss", (TinyLoss,), {})
    reg = build_registry(entry_points=[FakeEntryPoint("thief", make_plugin(losses={"zz_clash": other}))])
    with pytest.raises(PluginConflictError, match="'builtin'.*'thief'"):
        reg.get("losses", "zz_clash")
    assert reg.kind("losses")["zz_clash"].plugin == "builtin"


def test_same_name_in_different_kinds_is_fine() -> None:
    plug = make_plugin(encoders={"same": TinyEncoder}, losses={"same": TinyLoss})
    reg = build_registry(entry_points=[FakeEntryPoint("p", plug)])
    assert reg.get("encoders", "same") is TinyEncoder and reg.get("losses", "same") is TinyLoss
    assert plugin_failures(reg) == []


def test_unknown_names_and_kinds_give_helpful_errors() -> None:
    reg = build_registry(entry_points=[FakeEntryPoint("p", make_plugin(encoders={"convnext_tiny": TinyEncoder}))])
    with pytest.raises(UnknownComponentError, match="did you mean convnext_tiny"):
        reg.get("encoders", "convnext_tiy")
    with pytest.raises(KeyError):
        reg.get("encoders", "nothing_like_it")
    with pytest.raises(UnknownComponentError, match="unknown component kind 'encoder'.*encoders"):
        reg.get("encoder", "convnext_tiny")


# --------------------------------------------------------------------------- a real package


def _write_throwaway_package(root: Path) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "da-toolkit-throwaway-test-plugin"
            version = "0.0.1"

            [project.entry-points.da_toolkit]
            throwaway = "da_toolkit_throwaway_test_plugin"

            [tool.setuptools]
            py-modules = ["da_toolkit_throwaway_test_plugin"]
            """
        )
    )
    (pkg / "da_toolkit_throwaway_test_plugin.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            from da_toolkit import hookimpl


            class ThrowawayL1(nn.Module):
                def forward(self, pred, target, mask):
                    return (pred - target).abs()[mask].mean()


            @hookimpl
            def da_toolkit_losses():
                return {"throwaway_l1": ThrowawayL1}
            """
        )
    )
    return pkg


def da_toolkit_command() -> list[str]:
    script = Path(sys.executable).with_name("da-toolkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "da_toolkit.cli"]


def test_real_installed_plugin_package_is_listed_and_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _write_throwaway_package(tmp_path)
    site = tmp_path / "site"
    pip_install_target(pkg, site)
    assert (site / "da_toolkit_throwaway_test_plugin-0.0.1.dist-info" / "entry_points.txt").exists()

    env = {k: v for k, v in os.environ.items() if k not in (AUTOLOAD_ENV, BLOCK_ENV, EXTRA_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([*da_toolkit_command(), "plugins", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    comp = listing["components"]["losses"]["throwaway_l1"]
    assert comp == {
        "class_path": "da_toolkit_throwaway_test_plugin.ThrowawayL1",
        "plugin": "throwaway",
        "distribution": "da-toolkit-throwaway-test-plugin",
        "conflict": False,
    }
    assert listing["plugins"]["throwaway"] == "da-toolkit-throwaway-test-plugin"

    # in this process: make the site dir importable, as an installed package would be
    monkeypatch.syspath_prepend(str(site))
    try:
        cls = plugins.get_component("losses", "throwaway_l1")
        pred, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
        mask = torch.tensor([[True, True]])
        assert cls()(pred, target, mask).item() == pytest.approx(1.5)  # (1 + 2) / 2
        monkeypatch.setenv(AUTOLOAD_ENV, "1")  # the installed package is skipped when disabled
        assert "throwaway_l1" not in build_registry().kind("losses")
    finally:
        sys.modules.pop("da_toolkit_throwaway_test_plugin", None)
        plugins.reset()
    assert da_toolkit.__name__ == "da_toolkit"


# --------------------------------------------------------------------------- docs/plugins.md


def test_plugin_authoring_guide_template_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template of docs/plugins.md (pyproject entry point, component, hookimpl module and the
    example tests) works as written."""
    import re

    tomllib = pytest.importorskip("tomllib")
    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    pyproject = tomllib.loads(next(code for lang, code in blocks if lang == "toml"))
    assert pyproject["project"]["entry-points"]["da_toolkit"] == {"myplugin": "da_toolkit_myplugin.plugin"}
    component, hook_module, doc_tests = [code for lang, code in blocks if lang == "python"][:3]
    package = tmp_path / "da_toolkit_myplugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "perturb.py").write_text(component)
    (package / "plugin.py").write_text(hook_module)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        namespace: dict[str, object] = {}
        exec(compile(doc_tests, "docs/plugins.md", "exec"), namespace)  # noqa: S102 - our own docs
        tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
        assert len(tests) == 2
        for test in tests:
            test()
        from da_toolkit_myplugin.perturb import Vignette

        vignette = Vignette(strength=(0.5, 0.5), p=1.0, seed=0)
        out = vignette(torch.ones(1, 3, 5, 5))
        # corner: r^2 = (1 + 1) / 2 = 1 -> 1 - 0.5; centre: r = 0 -> unchanged
        assert out[0, 0, 0, 0].item() == pytest.approx(0.5) and out[0, 0, 2, 2].item() == pytest.approx(1.0)
        assert torch.equal(vignette.apply(torch.ones(1, 3, 5, 5), vignette.last_params), out)
    finally:
        for name in [m for m in sys.modules if m.startswith("da_toolkit_myplugin")]:
            del sys.modules[name]


# --------------------------------------------------------------------------- more broken cases


def test_same_module_under_two_plugin_names_is_reported() -> None:
    module = types.ModuleType("fake_twice")
    module.da_toolkit_losses = hookspecs.hookimpl(lambda: {"twice_loss": TinyLoss})
    module.da_toolkit_losses.__name__ = "da_toolkit_losses"
    reg = build_registry(entry_points=[FakeEntryPoint("first", module), FakeEntryPoint("second", module)])
    assert reg.kind("losses")["twice_loss"].plugin == "first"
    (fail,) = plugin_failures(reg)
    assert fail.plugin == "second" and "not registered" in fail.error


def test_unreadable_installed_metadata_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_entry_points(**kwargs: object):
        raise ValueError("bad entry_points.txt")

    monkeypatch.setattr(plugins.metadata, "entry_points", broken_entry_points)
    reg = build_registry()
    assert "builtin" in reg.plugins
    assert any("cannot read installed entry points" in f.error and "bad entry_points.txt" in f.error for f in plugin_failures(reg))


def test_resolve_across_kinds() -> None:
    one = FakeEntryPoint("one", make_plugin(encoders={"dup": TinyEncoder, "solo": TinyEncoder}, losses={"lossy": TinyLoss}))
    two = FakeEntryPoint("two", make_plugin(encoders={"dup": OtherEncoder}, losses={"solo": TinyLoss}))
    reg = build_registry(entry_points=[one, two])
    assert reg.resolve("lossy") is TinyLoss
    assert reg.resolve("no_such_name") is None
    with pytest.raises(PluginConflictError, match="'one'.*'two'"):
        reg.resolve("dup")
    with pytest.raises(PluginConflictError, match="several kinds.*encoders.*losses"):
        reg.resolve("solo")


def test_toolkit_keeps_working_with_broken_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a plugin failing on import and another clashing with a built-in name, recipes still
    resolve built-in names and the healthy plugin's names (the process-wide registry)."""
    losses = importlib.import_module("da_toolkit.losses")
    builtin_name = next(iter(losses.BUILTIN_LOSSES))
    eps = [
        FakeEntryPoint("broken", error=SyntaxError("invalid syntax (plugin.py, line 3)")),
        FakeEntryPoint("thief", make_plugin(losses={builtin_name: type("Thief", (TinyLoss,), {})})),
        FakeEntryPoint("healthy", make_plugin(encoders={"healthy_enc": TinyEncoder})),
    ]
    monkeypatch.setattr(plugins, "_REGISTRY", build_registry(entry_points=eps))
    assert plugins.get_component("encoders", "healthy_enc") is TinyEncoder
    assert plugins.get_registry().usable("losses").keys() == {n for n in losses.BUILTIN_LOSSES if n != builtin_name}
    with pytest.raises(PluginConflictError, match="'builtin'.*'thief'"):
        plugins.get_component("losses", builtin_name)
    reported = {f.plugin for f in plugin_failures(plugins.get_registry())}
    assert reported == {"broken", "thief"}
    from da_toolkit.cli.class_paths import resolve_class_path

    assert resolve_class_path("healthy_enc", "model.encoder") == f"{__name__}.TinyEncoder"


def test_entry_point_loading_none_is_reported_not_listed_as_blocked() -> None:
    reg = build_registry(entry_points=[FakeEntryPoint("empty", None)])
    assert [(f.plugin, f.error) for f in plugin_failures(reg)] == [("empty", "not registered: the entry point loaded None")]
    assert reg.blocked == [] and "empty" not in reg.plugins


def test_find_class_returns_the_registration() -> None:
    reg = build_registry(entry_points=[FakeEntryPoint("p", make_plugin(losses={"found_loss": TinyLoss}))])
    comp = reg.find_class(TinyLoss)
    assert comp is not None and (comp.kind, comp.name, comp.plugin) == ("losses", "found_loss", "p")
    assert reg.find_class(OtherEncoder) is None


# ------------------------------------------------------------- model components go through the registry


def test_model_lookup_reports_a_plugin_clash_on_a_builtin_encoder_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin registering ``dinov2`` (a built-in encoder name) makes building a model that names
    it fail naming both plugins (it used to silently pick the built-in one)."""
    from da_toolkit.models import build_model, load_model

    class Thief(Encoder):
        pass

    eps = [FakeEntryPoint("thief", make_plugin(encoders={"dinov2": Thief}), "thief-dist")]
    monkeypatch.setattr(plugins, "_REGISTRY", build_registry(entry_points=eps))
    with pytest.raises(PluginConflictError, match=r"'dinov2'.*'builtin'.*'thief'.*thief-dist"):
        build_model("tiny")
    with pytest.raises(PluginConflictError, match="'thief'"):
        load_model("tiny")


def test_model_lookup_uses_autoloaded_plugins_and_only_collects_the_kind(
    installed_fake: FakeEntryPoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model lookup collects just its kind (cheap) into the one process-wide registry, from
    the same plugins: a clash from an installed plugin is still reported, and a plugin encoder is
    usable by name in a model config."""
    from da_toolkit.models import build_model, describe_model
    from da_toolkit.models.encoders.dinov2 import DINOv2Encoder

    hooks_called: list[str] = []
    real_collect = plugins.Registry._collect_kind

    def spy(self: plugins.Registry, kind: object) -> None:
        hooks_called.append(kind.name)  # type: ignore[attr-defined]
        real_collect(self, kind)

    monkeypatch.setattr(plugins.Registry, "_collect_kind", spy)
    assert plugins.get_component("encoders", "dinov2") is DINOv2Encoder
    assert hooks_called == ["encoders"] and installed_fake.loads == 1
    assert plugins.get_registry(kinds=()).collected == {"encoders"}
    assert plugins.get_component("encoders", "auto_enc") is TinyEncoder  # cached
    assert hooks_called == ["encoders"] and installed_fake.loads == 1
    tiny = {"class_path": "DepthModel", "init_args": {
        "encoder": {"class_path": "dinov2", "init_args": {"embed_dim": 32, "depth": 1, "num_heads": 2,
                                                          "img_size": 28, "layer_indices": [0, 0, 0, 0]}},
        "decoder": {"class_path": "dpt", "init_args": {"features": 8, "out_channels": [8, 8, 8, 8]}}}}
    assert describe_model(build_model(tiny))["init_args"]["encoder"]["class_path"] == (
        f"{DINOv2Encoder.__module__}.DINOv2Encoder")
    # a clash installed later is seen after a refresh of the registries
    installed_fake._obj = make_plugin(encoders={"dinov2": OtherEncoder})
    plugins.reset()
    with pytest.raises(PluginConflictError, match="'builtin'.*'auto'.*auto-dist"):
        build_model(tiny)
    # one cache: the full registry is the same object, completed
    partial = plugins.get_registry(kinds=())
    assert partial.collected == {"encoders"}
    assert plugins.get_registry() is partial and partial.collected == set(plugins.kind_names())
    assert installed_fake.loads == 2  # once per registry: before and after reset()


def test_collect_rejects_unknown_kinds() -> None:
    with pytest.raises(UnknownComponentError, match="encoder"):
        build_registry(entry_points=[], kinds=["encoder"])
    reg = build_registry(entry_points=[], kinds=["losses"])
    assert set(reg.components) == {"losses"}


# ------------------------------------------------------------- start-up cost (issue 14.8)


def _modules_after(code: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return set(done.stdout.split())


def test_a_model_lookup_imports_neither_lightning_nor_torchmetrics() -> None:
    loaded = _modules_after("from da_toolkit import plugins; plugins.get_component('encoders', 'dinov2')")
    assert "torch" in loaded
    assert not loaded & {"lightning", "torchmetrics", "kornia", "h5py", "webdataset"}, loaded


def test_listing_perturbations_and_sources_imports_no_kornia_or_h5py() -> None:
    """Heavy libraries are imported where used (applying a perturbation, reading a file), not
    when a component is listed or resolved."""
    loaded = _modules_after(
        "from da_toolkit import plugins; r = plugins.get_registry(kinds=['perturbations', 'datasources'])\n"
        "assert 'color_jitter' in r.kind('perturbations') and 'hypersim' in r.kind('datasources')"
    )
    assert not loaded & {"kornia", "h5py", "lightning", "torchmetrics"}, loaded
