"""Layout rules of ``da_toolkit.models`` kept by tests: one ``torch.load``, no import cycles
(function-local imports included), nothing above the models layer imported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "da_toolkit"


def test_torch_load_is_called_only_by_the_safe_loader() -> None:
    calls = []
    for path in sorted(ROOT.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\btorch\.load\(", line) and not line.lstrip().startswith("#"):
                calls.append(f"{path.relative_to(ROOT.parent)}:{n}")
    assert calls and all(c.startswith("da_toolkit/models/weights/safe.py:") for c in calls), calls


@pytest.fixture(scope="module")
def graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("da_toolkit")


def test_models_modules_import_no_cycle(graph) -> None:
    mods = sorted(m for m in graph.modules if m.startswith("da_toolkit.models"))
    cycles = []
    for importer in mods:
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith("da_toolkit.models") and graph.chain_exists(importer=imported, imported=importer):
                back = graph.find_shortest_chain(importer=imported, imported=importer)
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles in da_toolkit.models:\n" + "\n".join(cycles)


def test_models_import_nothing_above_them(graph) -> None:
    above = ("da_toolkit.tasks", "da_toolkit.cli", "da_toolkit.inference", "da_toolkit.commands")
    bad = sorted(
        f"{m} -> {b}"
        for m in graph.modules if m.startswith("da_toolkit.models")
        for b in graph.find_modules_directly_imported_by(m) if b.startswith(above)
    )
    assert not bad, bad
