"""The ``da-toolkit`` command.

Extra subcommands (``plugins``, ``convert``, ``export``, ``pseudo-label``, ``pipeline``) live in
:mod:`da_toolkit.commands`, one module each with a ``main(argv) -> int``. Everything else
(``fit``, ``validate``, ``test``, ``predict``) goes to LightningCLI (:mod:`da_toolkit.lightning_cli`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: subcommand -> module in da_toolkit.commands providing ``main(argv: list[str]) -> int``
EXTRA_COMMANDS: dict[str, str] = {
    "plugins": "plugins",
    "convert": "convert",
    "export": "export",
    "pseudo-label": "pseudo_label",
    "pipeline": "pipeline",
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _usage() -> str:
    cmds = ", ".join([*LIGHTNING_COMMANDS, *EXTRA_COMMANDS])
    return (
        "usage: da-toolkit <command> [options]\n"
        f"commands: {cmds}\n"
        "`da-toolkit <command> --help` documents every option of a command."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``da-toolkit`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command in EXTRA_COMMANDS:
        module = importlib.import_module(f"da_toolkit.commands.{EXTRA_COMMANDS[command]}")
        return int(module.main(rest) or 0)
    if command in LIGHTNING_COMMANDS:
        from da_toolkit.lightning_cli import run_lightning_cli

        run_lightning_cli([command, *rest])
        return 0
    print(f"da-toolkit: unknown command {command!r}\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
