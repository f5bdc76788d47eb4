"""Every recipe/file path and every `da-toolkit` command named in README.md and docs/ exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from da_toolkit.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_RE = re.compile(r"(?<![\w/.-])((?:recipes|benchmarks|plugins|docs|da_toolkit|tests)/[\w./-]*\w)")
COMMAND_RE = re.compile(r"\bda-toolkit ([a-z][a-z-]*)")
LINK_RE = re.compile(r"\]\(([^)#]+\.md)\)")
CODE_RE = re.compile(r"```.*?```|`[^`\n]+`", re.S)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_paths_exist(doc: Path) -> None:
    missing = []
    for ref in PATH_RE.findall(_text(doc)):
        if any(ch in ref for ch in "*<>{}"):
            continue  # globs and placeholders
        if not (ROOT / ref).exists():
            missing.append(ref)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_commands_exist(doc: Path) -> None:
    known = set(COMMANDS)
    code = "\n".join(CODE_RE.findall(_text(doc)))  # commands are only named in code
    unknown = sorted({c for c in COMMAND_RE.findall(code) if c not in known})
    assert not unknown, f"{doc.relative_to(ROOT)} names unknown da-toolkit commands: {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_to_pages_resolve(doc: Path) -> None:
    broken = [link for link in LINK_RE.findall(_text(doc)) if not (doc.parent / link).exists()]
    assert not broken, f"{doc.relative_to(ROOT)} links to missing pages: {broken}"


def test_every_recipe_is_documented() -> None:
    recipes_doc = _text(ROOT / "docs" / "recipes.md") if (ROOT / "docs" / "recipes.md").exists() else ""
    undocumented = [
        str(p.relative_to(ROOT)) for p in sorted((ROOT / "recipes").rglob("*.yaml"))
        if str(p.relative_to(ROOT)) not in recipes_doc
    ]
    assert not undocumented, f"recipes missing from docs/recipes.md: {undocumented}"
