"""The Lightning side of ``da-toolkit pseudo-label``: :class:`PseudoLabelCLI` and its helpers.

Kept apart from :mod:`da_toolkit.cli.pseudo_label` so that the command checks its arguments
(missing files, misspelled registered names) before Lightning and torch are imported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from da_toolkit.cli.depth_cli import DepthLightningCLI
from da_toolkit.tasks.pseudo_label import shard_name, take_store_lock


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
