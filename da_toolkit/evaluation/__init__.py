"""Evaluation of depth models on labeled data sets: the loop and the results table.

Sits above :mod:`da_toolkit.models` and :mod:`da_toolkit.metrics`, below the tasks and the CLI.
"""

from da_toolkit.evaluation.evaluate import evaluate_model, format_table

__all__ = ["evaluate_model", "format_table"]
