"""``da-toolkit predict --output_dir DIR``: one folder for everything a prediction run writes.

The folder is the trainer's ``default_root_dir``: the writers without their own ``output_dir``
write there (:class:`~da_toolkit.inference.writer_base.DepthWriter`), LightningCLI saves the
resolved ``config.yaml`` there (``logger: false``) or under its logger's folder, which also
defaults to it (``lightning_logs/``). ``--output_dir`` given on the command line wins over every
config; without it the run's folder is ``predictions`` unless a config or
``--trainer.default_root_dir`` names another.
"""

from __future__ import annotations

from collections.abc import Sequence

from da_toolkit.inference.writer_base import DEFAULT_OUTPUT_DIR

__all__ = ["DEFAULT_OUTPUT_DIR", "OPTION", "output_dir_args"]

OPTION = "--output_dir"
HELP = (f"  {OPTION} DIR          folder for everything the run writes: predictions, the saved config, "
        f"logs (default: {DEFAULT_OUTPUT_DIR}; sets --trainer.default_root_dir)")


def output_dir_args(argv: Sequence[str]) -> list[str]:
    """``argv`` of ``da-toolkit predict`` with ``--output_dir DIR`` (or ``--output_dir=DIR``)
    turned into ``--trainer.default_root_dir=DIR`` placed last (it wins over ``--config`` files);
    without it, ``--trainer.default_root_dir=predictions`` placed first (configs may change it).

    With ``-h``/``--help`` the option's help line is printed first (LightningCLI does not list it).
    Raises ``ValueError`` for ``--output_dir`` without a value or given twice.
    """
    args = list(argv)
    out: list[str] = []
    chosen: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if key != OPTION:
            out.append(arg)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"{OPTION}: expected a folder, e.g. {OPTION} runs/predict")
            value = args[i + 1]
            i += 1
        if not value:
            raise ValueError(f"{OPTION}: expected a folder, got an empty value")
        if chosen is not None:
            raise ValueError(f"{OPTION} given twice ({chosen!r} and {value!r})")
        chosen = value
        i += 1
    if any(a in ("-h", "--help") for a in out):
        print(HELP)
    if chosen is None:
        return [f"--trainer.default_root_dir={DEFAULT_OUTPUT_DIR}", *out]
    return [*out, f"--trainer.default_root_dir={chosen}"]
