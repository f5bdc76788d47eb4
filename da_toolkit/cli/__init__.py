"""The ``da-toolkit`` command line (the top layer: nothing else in the package imports it).

Every subcommand is one row of :data:`COMMANDS`: ``name -> "module:function"``, where
``function(argv: list[str]) -> int`` returns the exit status. Adding a command is one line here.
The modules of this package:

* :mod:`~da_toolkit.cli.lightning_cli` - ``fit``/``validate``/``test``/``predict`` (LightningCLI),
  short forms of models and registered names expanded before parsing; it imports Lightning only
  after the checks that need no parsing (:mod:`~da_toolkit.cli.depth_cli` holds the LightningCLI
  class), so those errors and ``da-toolkit plugins`` start in well under a second;
* :mod:`~da_toolkit.cli.recipe_errors` - refused config values as one line (file, key, expected,
  got); :mod:`~da_toolkit.cli.checks` - checks of a parsed config; :mod:`~da_toolkit.cli.config_files`
  - reading ``--config`` files;
* :mod:`~da_toolkit.cli.class_paths` - registered / bare class names -> dotted class paths;
* :mod:`~da_toolkit.cli.plugins`, :mod:`~da_toolkit.cli.convert`, :mod:`~da_toolkit.cli.export`,
  :mod:`~da_toolkit.cli.pseudo_label`, :mod:`~da_toolkit.cli.pipeline` - the other commands;
  :mod:`~da_toolkit.cli.pipeline_runner` runs the stages of a pipeline recipe.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: subcommand -> ``"module:function"``; ``function(argv: list[str]) -> int`` (the exit status)
COMMANDS: dict[str, str] = {
    "fit": "da_toolkit.cli.lightning_cli:fit",
    "validate": "da_toolkit.cli.lightning_cli:validate",
    "test": "da_toolkit.cli.lightning_cli:test",
    "predict": "da_toolkit.cli.lightning_cli:predict",
    "plugins": "da_toolkit.cli.plugins:main",
    "convert": "da_toolkit.cli.convert:main",
    "export": "da_toolkit.cli.export:main",
    "pseudo-label": "da_toolkit.cli.pseudo_label:main",
    "pipeline": "da_toolkit.cli.pipeline:main",
    "shards": "da_toolkit.data.shards.convert:main",
}


def _usage() -> str:
    return (
        "usage: da-toolkit <command> [options]\n"
        f"commands: {', '.join(COMMANDS)}\n"
        "`da-toolkit <command> --help` documents every option of a command."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``da-toolkit`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"da-toolkit: unknown command {command!r}\n{_usage()}", file=sys.stderr)
        return 2
    module, _, function = COMMANDS[command].partition(":")
    return int(getattr(importlib.import_module(module), function)(rest) or 0)
