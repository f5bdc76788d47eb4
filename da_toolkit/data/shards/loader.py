"""``ShardLoader``: a ``DataLoader`` over a :class:`ShardStream` whose state resumes mid-epoch.

Lightning saves ``state_dict()`` of every training loader that has one in its checkpoints
(``fit_loop`` -> ``combined_loader``) and hands it back to ``load_state_dict`` on
``--ckpt_path``; the next epoch then continues after the last *trained* batch. The saved state
is the one after the last delivered batch (``lag=0``): Lightning's fetcher does not pre-fetch
from loaders with a length, which a ``ShardLoader`` always has; ``lag`` is there for loops that
do pre-fetch (the state is then taken that many batches back).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from da_toolkit.data.shards.stream import STATE_KEY, ShardStream, _dist_rank_world


class _tagging_collate:  # picklable callable
    """Collate items; returns ``(batch, (worker, entries delivered))`` from the items' stream tags."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any]]) -> Any:
        tags = [it.pop(STATE_KEY) for it in items if STATE_KEY in it]
        tag = (int(tags[-1][0]), max(int(t[1]) for t in tags)) if tags else None
        return self.collate(items), tag


class ShardLoader(DataLoader):
    """Batches of a :class:`ShardStream` for one rank; stateful for mid-epoch resume.

    Args:
        dataset: the stream.
        batch_size: samples per batch.
        collate_fn: collate of the sample list (default: torch's).
        drop_last: drop each rank's ragged last batch.
        lag: batches between the last delivered and the last trained one (Lightning: 0).
        rank, world_size: this loader's rank and the number of ranks (default: from
            ``torch.distributed`` when initialised, else 0 and 1).
        **kwargs: other ``DataLoader`` arguments (``num_workers``, ``pin_memory``...);
            ``persistent_workers`` is forced off (each epoch hands fresh parameters to workers).
    """

    def __init__(
        self,
        dataset: ShardStream,
        batch_size: int = 1,
        collate_fn: Any = None,
        drop_last: bool = False,
        lag: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, ShardStream):
            raise TypeError(f"ShardLoader needs a ShardStream, got {type(dataset).__name__}")
        kwargs.pop("shuffle", None)
        kwargs.pop("sampler", None)
        kwargs["persistent_workers"] = False
        if collate_fn is None:
            from torch.utils.data import default_collate

            collate_fn = default_collate
        inner = collate_fn.collate if isinstance(collate_fn, _tagging_collate) else collate_fn
        super().__init__(dataset, batch_size=batch_size, collate_fn=_tagging_collate(inner), drop_last=drop_last, **kwargs)
        if lag < 0:
            raise ValueError(f"ShardLoader.lag={lag}: expected >= 0")
        if (rank is None) != (world_size is None) or (world_size is not None and not 0 <= rank < world_size):  # type: ignore[operator]
            raise ValueError(f"ShardLoader: rank={rank}, world_size={world_size}: give both, 0 <= rank < world_size")
        self.lag, self.rank, self.world_size = lag, rank, world_size
        if world_size is not None:
            dataset.rank, dataset.world_size = rank, world_size
        self._epoch = -1
        self._pending: dict[str, Any] | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=lag + 2)
        self._exhausted = False

    def _layout(self) -> dict[str, int]:
        rank, world = (self.rank, self.world_size) if self.world_size is not None else _dist_rank_world()
        return {"rank": rank, "world_size": world, "num_workers": self.num_workers, "batch_size": int(self.batch_size or 1)}

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds: ShardStream = self.dataset  # type: ignore[assignment]
        layout = self._layout()
        skip: dict[int, int] = {}
        batches = 0
        if self._pending is not None:
            state, self._pending = self._pending, None
            for key in ("world_size", "num_workers", "batch_size"):
                if state.get(key) != layout[key]:
                    raise ValueError(
                        f"ShardLoader: cannot resume a data stream saved with {key}={state.get(key)} "
                        f"with {key}={layout[key]}; keep the same number of ranks, workers and batch size"
                    )
            if state.get("done"):
                self._epoch = int(state["epoch"]) + 1
            else:
                self._epoch = int(state["epoch"])
                skip = {int(w): int(k) for w, k in state.get("consumed", {}).items()}
                batches = int(state.get("batches", 0))
        else:
            self._epoch += 1
        ds.epoch, ds.skip = self._epoch, skip
        ds.rank, ds.world_size = layout["rank"], layout["world_size"]
        ds.batch_size, ds.drop_last = layout["batch_size"], bool(self.drop_last)
        ds.num_workers = self.num_workers
        # DataLoader takes batches from its workers round-robin starting at worker 0: let
        # worker 0 play the logical worker whose turn it was when the state was saved
        ds.worker_offset = batches % self.num_workers if self.num_workers > 0 else 0
        consumed = dict(skip)
        self._exhausted = False
        self._history.append({"epoch": self._epoch, "consumed": dict(consumed), "batches": batches, **layout})
        for batch, tag in super().__iter__():
            if tag is not None:
                worker, k = int(tag[0]), int(tag[1])
                consumed[worker] = max(k, consumed.get(worker, 0))
            batches += 1
            self._history.append({"epoch": self._epoch, "consumed": dict(consumed), "batches": batches, **layout})
            yield batch
        self._history.append({"epoch": self._epoch, "done": True, **layout})
        self._exhausted = True

    def __len__(self) -> int:
        _, world = (self.rank, self.world_size) if self.world_size is not None else _dist_rank_world()
        n = self.dataset.total_samples // world  # type: ignore[attr-defined]
        bs = int(self.batch_size or 1)
        return n // bs if self.drop_last else -(-n // bs)

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: ``{"epoch", "consumed": {worker: entries}, "batches"}`` or
        ``{"epoch", "done"}`` (plus the layout: rank, world size, workers, batch size)."""
        if self._pending is not None:
            return dict(self._pending)
        if not self._history:
            return {"epoch": self._epoch, "done": True, **self._layout()} if self._epoch >= 0 else {}
        if self._exhausted or len(self._history) <= self.lag:
            return dict(self._history[-1] if self._exhausted else self._history[0])
        return dict(self._history[-1 - self.lag])

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` at the next ``iter()``."""
        if state_dict:
            self._pending = dict(state_dict)
