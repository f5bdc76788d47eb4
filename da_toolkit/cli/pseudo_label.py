"""``da-toolkit pseudo-label --config recipes/pseudo_label.yaml``: label unlabeled images with a teacher.

Runs :class:`~da_toolkit.tasks.pseudo_label.PseudoLabelTask` over
:class:`~da_toolkit.tasks.pseudo_label.UnlabeledImages` in Lightning's predict loop, so
``--trainer.devices``/``--trainer.num_nodes``/``--trainer.strategy ddp`` spread it over devices and
nodes; rank ``r`` writes shard ``rank<r>`` of ``--store``. A re-run skips the finished items.

``--format files`` (default) writes the file-per-item store (:mod:`da_toolkit.data.pseudo_store`);
``--format shards`` writes tar shards (``rank<r>-NNNNNN.tar`` + ``rank<r>.index.json``, options
``--shards.*``, ``docs/scale.md``), which ``pseudo_label_shards`` sources stream. With shard output
the data may also be sharded image streams (``sharded_images``, local or ``s3://``): each rank and
loader worker reads its own range of records, a record's id (its ``json`` id, else its key) is
checked against the store before its image is decoded, and the image bytes travel into the output
shard unchanged. The lock of this
process's shard is taken before the teacher is loaded, so a second writer is refused at once.

Exit status: 0 every item labeled (or failures within ``--model.max_failures``); 1 more
unreadable/refused images than that, or a write to the store failed (full disk, read-only): the
message names the store and the items not written are redone by a re-run; 2 an error before any
work (config, unknown names, a store of another teacher/settings, a shard another process writes,
a teacher with no weights).

The teacher is ``model.teacher``: a teacher ``.ckpt`` / our safetensors (they record their
model), ``{preset: NAME, weights: FILE}``, or the full ``class_path: DepthModel`` description.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from typing import Any

EXIT_STATUS_HELP = ("Exit status: 0 all items labeled (or failures within --model.max_failures); 1 more failed "
                    "items than that, or a write to the store failed (the message names the store; re-run to "
                    "resume); 2 an error before any work (config, a store of another teacher/settings, a shard "
                    "being written by another process).")


def parse_pseudo_label_config(config: dict[str, Any], where: str) -> Any:
    """Parse and check a pseudo-label config (dict) as the command would, building nothing."""
    from da_toolkit.cli.lightning_cli import parse_only
    from da_toolkit.cli.pseudo_label_cli import CLI_KWARGS, PseudoLabelCLI
    from da_toolkit.tasks.pseudo_label import PseudoLabelTask, UnlabeledImages

    return parse_only(config, where, cli_class=PseudoLabelCLI, model_class=PseudoLabelTask,
                      data_class=UnlabeledImages, group_classes={"model": PseudoLabelTask}, **CLI_KWARGS)


def run(argv: list[str]) -> dict[str, Any]:
    """Run the job; returns ``{"store", "written", "skipped_before"}``."""
    from da_toolkit.cli.lightning_cli import preprocess_args, shorten_subclass_help
    from da_toolkit.cli.pseudo_label_cli import CLI_KWARGS, PseudoLabelCLI
    from da_toolkit.plugins import get_registry
    from da_toolkit.tasks.pseudo_label import (
        PseudoLabelShardStoreWriter,
        PseudoLabelStoreWriter,
        PseudoLabelTask,
        UnlabeledImages,
    )

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
                                              "sharded, resumable pseudo-label store (Lightning predict loop). "
                                              + EXIT_STATUS_HELP},
            )
    config = cli.config
    store, settings = config["store"], {"input_size": cli.datamodule.input_size}
    writer: Any
    if config["format"] == "shards":
        opts = config["shards"]
        writer = PseudoLabelShardStoreWriter(store, lock=cli.early_lock, settings=settings, maxcount=opts["maxcount"],
                                             encoding=opts["encoding"], zlib_level=opts["zlib_level"],
                                             storage_options=opts["storage_options"])
        cli.datamodule.keep_images = bool(opts["images"])
        if cli.datamodule.streaming and not opts["images"]:
            raise ValueError("shards.images: must be true with sharded image streams as data.sources (a reader can "
                             "only find the image in the label's own shard)")
    else:
        writer = PseudoLabelStoreWriter(store, dtype=config["dtype"], settings=settings, lock=cli.early_lock)
    cli.early_lock = None  # the writer owns it now
    cli.trainer.callbacks.append(writer)
    try:
        with warnings.catch_warnings():  # streams have no sampler to take batch indices from; writers need none
            warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
            cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
    finally:
        writer.release()  # also when the run failed: the lock never outlives the job (in-process pipelines)
    if writer.error:
        from da_toolkit.tasks.pseudo_label import StoreWriteError

        raise StoreWriteError(writer.error)
    return {"store": store, "written": writer.written, "failed": list(cli.model.failures),
            "exit_status": cli.model.exit_status}


def main(argv: list[str]) -> int:
    """``da-toolkit pseudo-label ARGS``; returns the exit status (see the module docstring)."""
    from da_toolkit.cli.class_paths import UnknownClassPathError
    from da_toolkit.cli.lightning_cli import precheck_args
    from da_toolkit.plugins import get_registry

    get_registry()
    try:  # missing/invalid --config files, misspelled registered names: before Lightning is imported
        precheck_args(argv)
    except (UnknownClassPathError, FileNotFoundError, ValueError) as exc:
        print(f"da-toolkit pseudo-label: error: {exc}", file=sys.stderr)
        return 2
    from da_toolkit.cli.lightning_cli import contract_error
    from da_toolkit.cli.model_forms import ModelFormError
    from da_toolkit.data.pseudo_store import ShardBusyError, StoreMismatchError
    from da_toolkit.tasks.pseudo_label import StoreWriteError

    try:
        result = run(argv)
    except StoreWriteError as exc:  # full disk, read-only store: after work started
        if exc.before_work:
            print(f"da-toolkit pseudo-label: error: {exc}", file=sys.stderr)
            return 2
        print(f"da-toolkit pseudo-label: error: {exc}; the items not written are labeled by a re-run",
              file=sys.stderr)
        return 1
    except (UnknownClassPathError, ModelFormError, StoreMismatchError, ShardBusyError, FileNotFoundError,
            ValueError, TypeError) as exc:
        if isinstance(exc, TypeError) and contract_error(exc) is None:
            raise
        print(f"da-toolkit pseudo-label: error: {contract_error(exc) or exc}", file=sys.stderr)
        return 2
    failed = len(result["failed"])
    print(f"pseudo-label: wrote {result['written']} item(s) to {result['store']}"
          + (f"; {failed} item(s) failed (listed above)" if failed else ""), file=sys.stderr)
    return int(result["exit_status"])
