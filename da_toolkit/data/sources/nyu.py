"""NYU Depth v2 labeled set (``nyu_depth_v2_labeled.mat``, MATLAB v7.3 = HDF5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.sources.base import DataSource, intrinsics_matrix, make_sample

if TYPE_CHECKING:  # h5py is imported on first read: listing/resolving sources does not need it
    import h5py

#: Intrinsics of the NYUv2 RGB camera (Silberman et al. toolbox), pixels of the 640x480 frames.
NYU_INTRINSICS = (518.8579, 519.46961, 325.58245, 253.73617)


def read_split_indices(path: Path, split: str) -> list[int]:
    """0-based indices of ``split`` from the official ``splits.mat`` or a text file.

    ``splits.mat`` (MATLAB v5, read with scipy) holds 1-based ``trainNdxs`` (795) and
    ``testNdxs`` (654). A ``.txt`` file holds 1-based indices, one per line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"NYUv2 split file {path} does not exist")
    if path.suffix.lower() == ".mat":
        try:
            from scipy.io import loadmat
        except ImportError as exc:  # pragma: no cover - scipy ships with most installs
            raise ImportError("reading splits.mat needs scipy; or give a .txt of 1-based indices") from exc
        key = {"train": "trainNdxs", "test": "testNdxs"}[split]
        mat = loadmat(str(path))
        if key not in mat:
            raise SampleReadError(path, f"missing variable {key!r} (has {sorted(k for k in mat if not k.startswith('__'))})")
        one_based = np.asarray(mat[key]).ravel().astype(int).tolist()
    else:
        one_based = [int(t) for t in path.read_text().split()]
    if any(i < 1 for i in one_based):
        raise SampleReadError(path, "indices must be 1-based (MATLAB) and >= 1")
    return [i - 1 for i in one_based]


class NYUv2(DataSource):
    """NYU Depth v2 labeled frames, metric depth in metres (``depth_kind="metric"``).

    The ``.mat`` stores MATLAB column-major arrays; h5py sees ``images`` as ``(N, 3, W, H)``
    uint8 and ``depths`` as ``(N, W, H)`` float32 metres; both are transposed back to
    ``(H, W, 3)`` / ``(H, W)``. ``labels`` (``(N, W, H)``, 0 = unlabelled) become ``seg`` (0 -> 255)
    when ``with_seg``.

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        split: ``"train"`` / ``"test"`` (official 795/654 split, needs ``split_file``) or ``"all"``.
        split_file: ``splits.mat`` or a text file of 1-based indices.
        with_seg: include the 894-class labels as ``seg``.
        min_depth, max_depth: valid range in metres (defaults 1e-3 and 10).
    """

    name = "nyuv2"

    def __init__(
        self,
        mat_path: str | Path,
        split: Literal["train", "test", "all"] = "test",
        split_file: str | Path | None = None,
        with_seg: bool = False,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
    ) -> None:
        self.mat_path = Path(mat_path)
        if not self.mat_path.is_file():
            raise FileNotFoundError(f"NYUv2 file {self.mat_path} does not exist")
        import h5py

        try:
            with h5py.File(self.mat_path, "r") as f:
                for key in ("images", "depths"):
                    if key not in f:
                        raise SampleReadError(self.mat_path, f"missing dataset {key!r}; is this nyu_depth_v2_labeled.mat?")
                total = f["images"].shape[0]
                if f["images"].ndim != 4 or f["images"].shape[1] != 3:
                    raise SampleReadError(self.mat_path, f"images has shape {f['images'].shape}, expected (N, 3, W, H)")
        except OSError as exc:
            raise SampleReadError(self.mat_path, f"not an HDF5 (MATLAB v7.3) file ({exc})") from None
        if split == "all":
            self.indices = list(range(total))
        elif split_file is None:
            raise ValueError(f"NYUv2 split={split!r} needs split_file (official splits.mat or 1-based .txt)")
        else:
            self.indices = read_split_indices(Path(split_file), split)
        bad = [i for i in self.indices if not 0 <= i < total]
        if bad:
            raise SampleReadError(self.mat_path, f"split indices {bad[:5]} out of range for {total} frames")
        self.with_seg = with_seg
        self.min_depth, self.max_depth = min_depth, max_depth
        self._file: h5py.File | None = None  # opened lazily per process (h5py handles do not fork)

    def __len__(self) -> int:
        return len(self.indices)

    def _h5(self) -> h5py.File:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.mat_path, "r")
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[self._check_index(index)]
        f = self._h5()
        image = np.ascontiguousarray(np.asarray(f["images"][i]).transpose(2, 1, 0))
        depth = np.asarray(f["depths"][i], dtype=np.float32).T
        seg = None
        if self.with_seg and "labels" in f:
            labels = np.asarray(f["labels"][i]).T.astype(np.int64)
            seg = np.where(labels == 0, 255, labels)
        return make_sample(
            image,
            source=self.name,
            item_id=f"{i + 1:04d}",
            image_ref={"source": {"class_path": f"{__name__}.NYUv2", "init_args": {"mat_path": str(self.mat_path), "split": "all"}}, "index": i},
            depth=depth,
            depth_kind="metric",
            seg=seg,
            intrinsics=intrinsics_matrix(*NYU_INTRINSICS),
            where=f"{self.mat_path}[{i}]",
            min_depth=self.min_depth,
            max_depth=self.max_depth,
        )
