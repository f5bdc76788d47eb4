"""Reading the YAML file of a ``--config`` option (run configs, pipeline recipes, override files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_config_file(path: str, error: type[ValueError] = ValueError) -> Any:
    """The loaded YAML of ``--config path`` (``None`` for an empty file).

    Raises:
        FileNotFoundError: no such file (the message names the option and the path).
        ValueError: ``error`` (a ``ValueError`` subclass) for invalid YAML, naming the file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise error(f"--config {path}: invalid YAML: {exc}") from None
