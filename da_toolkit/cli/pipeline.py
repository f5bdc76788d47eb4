"""``da-toolkit pipeline --config recipes/quickstart.yaml``: teacher -> pseudo-label -> student -> eval.

Runs the stages of a pipeline recipe in order (see :mod:`da_toolkit.cli.pipeline_runner` for the
recipe format), skipping completed stages and resuming interrupted ones, evaluates the models,
prints a results table and, as the very last line of stdout, ``results: <path to results.json>``.
"""

from __future__ import annotations

import argparse
import sys

from da_toolkit.cli import pipeline_runner as pipeline_mod


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="da-toolkit pipeline",
        description=__doc__.split("\n\n")[0] + "\n\n" + (pipeline_mod.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", "-c", required=True, help="pipeline recipe (YAML), e.g. recipes/quickstart.yaml")
    parser.add_argument("--output_dir", default=None,
                        help="override the recipe's output_dir (where stages write and resume)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        pipe = pipeline_mod.load_pipeline(args.config, args.output_dir)
    except (pipeline_mod.PipelineConfigError, FileNotFoundError) as exc:
        print(f"da-toolkit pipeline: error: {exc}", file=sys.stderr)
        return 2
    path, results = pipe.run()
    from da_toolkit.evaluation import format_table

    sys.stdout.flush()
    print(format_table(results))
    print(f"results: {path}", flush=True)
    return 0
