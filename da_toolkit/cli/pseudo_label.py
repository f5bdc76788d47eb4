"""``da-toolkit pseudo-label --config recipes/pseudo_label.yaml``: label unlabeled images with a teacher.

Runs :class:`~da_toolkit.tasks.pseudo_label.PseudoLabelTask` over
:class:`~da_toolkit.tasks.pseudo_label.UnlabeledImages` in Lightning's predict loop, so
``--trainer.devices``/``--trainer.num_nodes``/``--trainer.strategy ddp`` spread it over devices and
nodes; rank ``r`` writes shard ``rank<r>`` of ``--store``. A re-run skips the finished items.

The teacher is ``model.teacher``: a teacher ``.ckpt`` / our safetensors (they record their
model), ``{preset: NAME, weights: FILE}``, or the full ``class_path: DepthModel`` description.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from da_toolkit.cli.lightning_cli import DepthLightningCLI
from da_toolkit.tasks.pseudo_label import (
    PseudoLabelStoreWriter,
    PseudoLabelTask,
    UnlabeledImages,
)


class PseudoLabelCLI(DepthLightningCLI):
    """LightningCLI of the pseudo-label job: ``model`` (``teacher``), ``data``, ``trainer``, ``store``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--store", type=str, required=True,
                            help="pseudo-label store folder (created; re-runs resume)")
        parser.add_argument("--dtype", type=str, default="float16", choices=["float16", "float32"],
                            help="dtype of the stored disparity .npy files")
        parser.link_arguments("store", "data.store")


CLI_KWARGS: dict[str, Any] = {
    "seed_everything_default": 0,
    "trainer_defaults": {"logger": False, "enable_checkpointing": False},
    "subclass_mode_model": False,
    "subclass_mode_data": False,
    "auto_configure_optimizers": False,
}


def parse_pseudo_label_config(config: dict[str, Any], where: str) -> Any:
    """Parse and check a pseudo-label config (dict) as the command would, building nothing."""
    from da_toolkit.cli.lightning_cli import parse_only

    return parse_only(config, where, cli_class=PseudoLabelCLI, model_class=PseudoLabelTask,
                      data_class=UnlabeledImages, group_classes={"model": PseudoLabelTask}, **CLI_KWARGS)


def run(argv: list[str]) -> dict[str, Any]:
    """Run the job; returns ``{"store", "written", "skipped_before"}``."""
    from da_toolkit.cli.lightning_cli import preprocess_args, shorten_subclass_help
    from da_toolkit.plugins import get_registry

    get_registry()
    shorten_subclass_help()
    with tempfile.TemporaryDirectory(prefix="da_toolkit_pl_") as tmpdir:
        args = preprocess_args(argv, tmpdir, group_classes={"model": PseudoLabelTask})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            cli = PseudoLabelCLI(
                PseudoLabelTask, UnlabeledImages, run=False, args=args, save_config_callback=None,
                seed_everything_default=CLI_KWARGS["seed_everything_default"],
                trainer_defaults=CLI_KWARGS["trainer_defaults"],
                auto_configure_optimizers=False,
                parser_kwargs={"prog": "da-toolkit pseudo-label",
                               "description": "Label unlabeled data sources with a trained teacher into a "
                                              "sharded, resumable pseudo-label store (Lightning predict loop)."},
            )
    store = cli.config["store"]
    writer = PseudoLabelStoreWriter(store, dtype=cli.config["dtype"],
                                    settings={"input_size": cli.datamodule.input_size})
    cli.trainer.callbacks.append(writer)
    cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
    return {"store": store, "written": writer.written}


def main(argv: list[str]) -> int:
    from da_toolkit.cli.class_paths import UnknownClassPathError
    from da_toolkit.cli.model_forms import ModelFormError
    from da_toolkit.data.pseudo_store import StoreMismatchError

    try:
        result = run(argv)
    except (UnknownClassPathError, ModelFormError, StoreMismatchError, FileNotFoundError, ValueError) as exc:
        print(f"da-toolkit pseudo-label: error: {exc}", file=sys.stderr)
        return 2
    print(f"pseudo-label: wrote {result['written']} item(s) to {result['store']}", file=sys.stderr)
    return 0
