"""``da-toolkit pipeline --config recipes/quickstart.yaml``: teacher -> pseudo-label -> student -> eval.

Runs the stages of a pipeline recipe in order (see :mod:`da_toolkit.cli.pipeline_runner` for the
recipe format), skipping completed stages and resuming interrupted ones, evaluates the models,
prints a results table and, as the very last line of stdout, ``results: <path to results.json>``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from da_toolkit.cli import pipeline_runner as pipeline_mod

OVERRIDES_HELP = """\
overrides:
  --KEY=VALUE / --KEY VALUE  any value of the recipe by its dotted key, VALUE parsed as YAML, e.g.
                             --stages.teacher.config.trainer.max_steps=10
                             --stages.*.config.trainer.accelerator=cpu   (every stage)
                             --evaluation.input_size=84
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``da-toolkit pipeline``."""
    parser = argparse.ArgumentParser(
        prog="da-toolkit pipeline",
        description=__doc__.split("\n\n")[0] + "\n\n" + (pipeline_mod.__doc__ or ""),
        epilog=OVERRIDES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", "-c", required=True, help="pipeline recipe (YAML), e.g. recipes/quickstart.yaml")
    parser.add_argument("--output_dir", default=None,
                        help="override the recipe's output_dir (where stages write and resume)")
    parser.add_argument("--print_config", action="store_true",
                        help="check every stage and print the recipe as it would run (each stage's parsed "
                             "config, models in full), then exit without running anything")
    return parser


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["--a.b=1", "--c", "x"]`` -> ``{"a.b": 1, "c": "x"}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--") or len(item) <= 2:
            raise pipeline_mod.PipelineConfigError(f"unexpected argument {item!r}: overrides are --KEY=VALUE")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise pipeline_mod.PipelineConfigError(f"override --{key}: give a value (--{key}=VALUE)")
            value = items[i + 1]
            i += 1
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise pipeline_mod.PipelineConfigError(f"override --{key}: invalid YAML value: {exc}") from None
        i += 1
    return out


def main(argv: list[str]) -> int:
    """Run ``da-toolkit pipeline``; returns the exit status."""
    import yaml

    args, extra = build_parser().parse_known_args(argv)
    try:
        pipe = pipeline_mod.load_pipeline(args.config, args.output_dir, parse_overrides(extra))
        if args.print_config:
            print(yaml.safe_dump(pipe.validate(), sort_keys=False), end="")
            return 0
        pipe.validate()
    except (pipeline_mod.PipelineConfigError, FileNotFoundError) as exc:
        print(f"da-toolkit pipeline: error: {exc}", file=sys.stderr)
        return 2
    try:
        path, results = pipe.run(validate=False)  # checked above
    except pipeline_mod.PipelineConfigError as exc:  # e.g. a value a constructor refused, when its stage starts
        print(f"da-toolkit pipeline: error: {exc}", file=sys.stderr)
        return 2
    from da_toolkit.evaluation import format_table

    sys.stdout.flush()
    print(format_table(results))
    print(f"results: {path}", flush=True)
    return 0
