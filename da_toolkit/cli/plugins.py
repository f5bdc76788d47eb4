"""``da-toolkit plugins``: list every registered component by kind, and failed plugins."""

from __future__ import annotations

import argparse
import json
from typing import Any

from da_toolkit.plugins import (
    AUTOLOAD_ENV,
    BLOCK_ENV,
    EXTRA_ENV,
    Registry,
    autoload_disabled,
    get_registry,
    kind_names,
)


def _origin(plugin: str, distribution: str | None) -> str:
    return plugin if distribution is None else f"{plugin}, {distribution}"


def _kinds(registry: Registry, kind: str | None) -> list[str]:
    return [kind] if kind is not None else kind_names()


def format_registry(registry: Registry, kind: str | None = None) -> str:
    """Human-readable listing.

    One block per kind (``kind (count):``), one line per component
    ``name  module.Class  [plugin, distribution]``; a name registered by several plugins is
    marked ``CONFLICT`` with every registration. Then the loaded plugins, the blocked ones and
    the failures (``plugin (distribution): error``).
    """
    lines: list[str] = []
    for k in _kinds(registry, kind):
        comps = registry.kind(k)
        lines.append(f"{k} ({len(comps)}):")
        for name in sorted(comps):
            comp = comps[name]
            clash = registry.conflicts.get((k, name))
            if clash:
                owners = "; ".join(f"{c.class_path} [{_origin(c.plugin, c.distribution)}]" for c in clash)
                lines.append(f"  {name:<28} CONFLICT: {owners}")
            else:
                lines.append(f"  {name:<28} {comp.class_path}  [{_origin(comp.plugin, comp.distribution)}]")
    if kind is None:
        plugins = ", ".join(_origin(p, d) for p, d in sorted(registry.plugins.items()))
        lines.append(f"plugins: {plugins or 'none'}")
        if autoload_disabled():
            lines.append(f"third-party autoload disabled ({AUTOLOAD_ENV})")
        if registry.blocked:
            lines.append(f"blocked ({BLOCK_ENV}): {', '.join(registry.blocked)}")
    if registry.failures:
        lines.append(f"failed plugins ({len(registry.failures)}):")
        for fail in registry.failures:
            origin = fail.plugin if fail.distribution is None else f"{fail.plugin} ({fail.distribution})"
            lines.append(f"  {origin}: {fail.error}")
    return "\n".join(lines)


def registry_as_dict(registry: Registry, kind: str | None = None) -> dict[str, Any]:
    """JSON-ready form of the listing (``components``, ``conflicts``, ``plugins``, ``blocked``,
    ``failures``)."""
    components = {
        k: {
            name: {
                "class_path": comp.class_path,
                "plugin": comp.plugin,
                "distribution": comp.distribution,
                "conflict": (k, name) in registry.conflicts,
            }
            for name, comp in sorted(registry.kind(k).items())
        }
        for k in _kinds(registry, kind)
    }
    return {
        "components": components,
        "conflicts": [
            {"kind": k, "name": n, "plugins": [c.plugin for c in comps]}
            for (k, n), comps in sorted(registry.conflicts.items())
        ],
        "plugins": dict(sorted(registry.plugins.items())),
        "blocked": list(registry.blocked),
        "autoload_disabled": autoload_disabled(),
        "failures": [
            {"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
            for f in registry.failures
        ],
    }


def main(argv: list[str]) -> int:
    """Print the listing; exit status 1 with ``--strict`` when any plugin failed."""
    parser = argparse.ArgumentParser(
        prog="da-toolkit plugins",
        description="List every registered component (encoders, decoders, perturbations, losses, "
        "datasources, metrics, writers) with the plugin and distribution it comes from, and any "
        f"plugin that failed to load. Set {AUTOLOAD_ENV}=1 to skip third-party plugins, "
        f"{BLOCK_ENV}=a,b to block some by name, {EXTRA_ENV}=pkg.module to load a module as a "
        "plugin.",
    )
    parser.add_argument("--kind", choices=kind_names(), help="list one kind only")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--strict", action="store_true",
        help="import every listed class (classes registered as 'module:Class' references are otherwise imported "
        "when first used) and exit with status 1 if any plugin failed or clashed (with --kind: failed to load, or in "
        "that kind; only that kind's hooks run)"
    )
    args = parser.parse_args(argv)
    registry = get_registry(kinds=None if args.kind is None else [args.kind])
    if args.strict:  # import every class registered by reference (a broken one is a failure)
        registry.import_all()
    if args.json:
        print(json.dumps(registry_as_dict(registry, args.kind), indent=2))
    else:
        print(format_registry(registry, args.kind))
    return 1 if args.strict and registry.failures else 0
