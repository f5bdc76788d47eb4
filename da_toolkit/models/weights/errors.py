"""Errors of weights reading and loading (every message names the file)."""

from __future__ import annotations

__all__ = ["HeadMismatchError", "UnsafeCheckpointError", "WeightsError", "WeightsMismatchError"]


class WeightsError(ValueError):
    """A weights file that cannot be read or used; the message names the file."""


class UnsafeCheckpointError(WeightsError):
    """A pickle that would run code (import/call objects) was refused without running it."""


class HeadMismatchError(WeightsError):
    """The file records a different head (relative vs metric, or another ``max_depth``) than the
    model it is loaded into; the file's head always wins, so this is refused."""


#: keys (or key groups) listed per kind in a :class:`WeightsMismatchError` message
SHOWN_KEYS = 10


def group_keys(keys: list[str]) -> list[str]:
    """State-dict keys summarised per module: ``encoder.blocks.4.*`` (12 keys) for the keys under
    the first numbered part (a block of a missing layer), the key itself when it is alone.

    >>> group_keys(["enc.blocks.4.norm.weight", "enc.blocks.4.norm.bias", "head.bias"])
    ['enc.blocks.4.* (2 keys)', 'head.bias']
    """
    groups: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split(".")
        numbered = next((i for i, p in enumerate(parts[:-1]) if p.isdigit()), None)
        prefix = ".".join(parts[: numbered + 1]) if numbered is not None else ".".join(parts[:-1]) or key
        groups.setdefault(prefix, []).append(key)
    return [members[0] if len(members) == 1 else f"{prefix}.* ({len(members)} keys)" for prefix, members in groups.items()]


class WeightsMismatchError(WeightsError):
    """Weights that do not fit the model: lists missing, unexpected and mis-shaped keys."""

    def __init__(
        self,
        path: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.path, self.missing, self.unexpected, self.mismatched = path, missing, unexpected, mismatched

        def show(items: list[str]) -> str:
            head = ", ".join(items[:SHOWN_KEYS])
            return head + (f", ... ({len(items) - SHOWN_KEYS} more)" if len(items) > SHOWN_KEYS else "")

        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {show(group_keys(missing))}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {show(group_keys(unexpected))}")
        if mismatched:
            parts.append(
                f"shape mismatches ({len(mismatched)}): "
                + show([f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched])
            )
        # one line (a command prints it as its error line): is it the right preset/architecture?
        super().__init__(f"weights in {path} do not fit the model: " + "; ".join(parts)
                         + " - are they of another preset or architecture?")
