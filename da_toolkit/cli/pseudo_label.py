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

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from da_toolkit.cli.lightning_cli import DepthLightningCLI
from da_toolkit.tasks.pseudo_label import (
    PseudoLabelShardStoreWriter,
    PseudoLabelStoreWriter,
    PseudoLabelTask,
    UnlabeledImages,
    shard_name,
    take_store_lock,
)

EXIT_STATUS_HELP = ("Exit status: 0 all items labeled (or failures within --model.max_failures); 1 more failed "
                    "items than that, or a write to the store failed (the message names the store; re-run to "
                    "resume); 2 an error before any work (config, a store of another teacher/settings, a shard "
                    "being written by another process).")


def guess_global_rank(trainer_config: Any) -> int | None:
    """This process's global rank from the launcher's environment, before the Trainer exists
    (torchrun/torchelastic ``RANK``, SLURM ``SLURM_PROCID``, Lightning's own launcher ``NODE_RANK``
    and ``LOCAL_RANK`` with ``trainer.devices`` per node); ``None`` when it cannot be told."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    env = os.environ
    if TorchElasticEnvironment.detect():
        return int(env["RANK"])
    if SLURMEnvironment.detect():
        return int(env["SLURM_PROCID"])
    local, node = int(env.get("LOCAL_RANK", 0)), int(env.get("NODE_RANK", env.get("GROUP_RANK", 0)))
    if node == 0:
        return local
    devices = trainer_config.get("devices") if trainer_config is not None else None
    if isinstance(devices, int) and devices > 0:
        return node * devices + local
    if isinstance(devices, (list, tuple)):
        return node * len(devices) + local
    return None


class PseudoLabelCLI(DepthLightningCLI):
    """LightningCLI of the pseudo-label job: ``model`` (``teacher``), ``data``, ``trainer``, ``store``,
    ``format`` and ``shards``; takes the store lock before the teacher is built."""

    early_lock: Any = None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add ``--store``, ``--format`` and the other pseudo-label options."""
        parser.add_argument("--store", type=str, required=True,
                            help="pseudo-label store: folder (files/shards) or fsspec URL (shards, e.g. s3://b/pl); "
                                 "created; re-runs resume")
        parser.add_argument("--format", type=str, default="files", choices=["files", "shards"],
                            help="files: one .npy per item + manifests (small scale); shards: tar shards per rank "
                                 "(docs/scale.md)")
        parser.add_argument("--dtype", type=str, default="float16", choices=["float16", "float32"],
                            help="dtype of the stored disparity .npy files (format files)")
        parser.add_argument("--shards.maxcount", type=int, default=1000,
                            help="items per shard, the unit of resumption (format shards)")
        parser.add_argument("--shards.encoding", type=str, default="float16z", choices=["float16z", "png16"],
                            help="label encoding (format shards): float16z = zlib float16, png16 = 16-bit PNG + range")
        parser.add_argument("--shards.zlib_level", type=int, default=6, help="zlib level of float16z (1 fastest, 9 smallest)")
        parser.add_argument("--shards.images", type=bool, default=True,
                            help="store each image in the shard next to its label, so students stream without "
                                 "the original files (format shards)")
        parser.add_argument("--shards.storage_options", type=dict | None, default=None,
                            help="fsspec options of a --store URL (endpoint, credentials)")
        parser.link_arguments("store", "data.store")
        parser.link_arguments("format", "data.store_format")
        parser.link_arguments("shards.storage_options", "data.storage_options")

    def instantiate_classes(self) -> None:
        """Take the store lock early (before the model is loaded), then build the classes."""
        config = self.config
        rank = guess_global_rank(config.get("trainer"))
        new_store = _new_local_folder(config["store"])
        if rank is not None:  # a wrong guess is corrected by the writer (it locks its own rank's shard)
            self.early_lock = (take_store_lock(config["store"], config["format"], shard_name(rank)), shard_name(rank))
        try:
            super().instantiate_classes()
        except BaseException:
            self.release_lock()
            if new_store is not None:  # e.g. the teacher's weights were refused: leave no empty store behind
                _remove_if_only_locks(new_store)
            raise

    def release_lock(self) -> None:
        """Release the early lock (when the run stops before a writer took it over)."""
        if self.early_lock is not None and self.early_lock[0] is not None:
            self.early_lock[0].close()
        self.early_lock = None


def _new_local_folder(store: str) -> Path | None:
    """``store`` as a local folder that does not exist yet (else ``None``: URL or existing)."""
    from da_toolkit.data.shards import urls

    if not urls.is_local(store):
        return None
    path = urls.local_path(store)
    return None if path.exists() else path


def _remove_if_only_locks(folder: Path) -> None:
    """Remove ``folder`` made by this run's early lock if it holds nothing but empty/lock files."""
    if not folder.is_dir():
        return
    files = [p for p in folder.rglob("*") if p.is_file()]
    if all(p.name.endswith(".lock") or p.stat().st_size == 0 for p in files):
        shutil.rmtree(folder, ignore_errors=True)


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
