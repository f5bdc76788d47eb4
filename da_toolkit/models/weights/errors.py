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
            head = ", ".join(items[:20])
            return head + (f", ... ({len(items) - 20} more)" if len(items) > 20 else "")

        parts = [f"weights in {path} do not fit the model:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if mismatched:
            parts.append(
                f"  shape mismatches ({len(mismatched)}): "
                + show([f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched])
            )
        super().__init__("\n".join(parts))
