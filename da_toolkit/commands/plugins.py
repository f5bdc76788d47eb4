"""``da-toolkit plugins``: list every registered component by kind, and failed plugins."""

from __future__ import annotations

import argparse

from da_toolkit.plugins import Registry, get_registry


def format_registry(registry: Registry) -> str:
    """Human-readable listing: kinds, then ``name  class  (plugin, distribution)``."""
    lines: list[str] = []
    for kind in sorted(registry.components):
        comps = registry.components[kind]
        lines.append(f"{kind} ({len(comps)}):")
        for name in sorted(comps):
            comp = comps[name]
            origin = comp.plugin if comp.distribution is None else f"{comp.plugin}, {comp.distribution}"
            lines.append(f"  {name:<28} {comp.cls.__module__}.{comp.cls.__qualname__}  [{origin}]")
    if registry.failures:
        lines.append(f"failed plugins ({len(registry.failures)}):")
        for fail in registry.failures:
            origin = fail.plugin if fail.distribution is None else f"{fail.plugin} ({fail.distribution})"
            lines.append(f"  {origin}: {fail.error}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="da-toolkit plugins",
        description="List every registered component (encoders, decoders, perturbations, losses, "
        "datasources, metrics, writers) with the plugin and distribution it comes from, and any "
        "plugin that failed to load. Set DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1 to skip third-party "
        "plugins, DA_TOOLKIT_BLOCK_PLUGINS=a,b to block some by name.",
    )
    parser.parse_args(argv)
    print(format_registry(get_registry()))
    return 0
