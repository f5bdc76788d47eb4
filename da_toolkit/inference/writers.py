"""Prediction writers: Lightning ``BasePredictionWriter`` callbacks, one output format each.

Every writer writes one file per :class:`~da_toolkit.inference.items.PredictionItem` under its
``output_dir`` (default: the run's folder, ``da-toolkit predict --output_dir``) mirroring the input
tree, atomically, and skips items whose file already exists (unless ``overwrite``). Formats with
metadata record the licence of the model's weights (:mod:`da_toolkit.models.licence`). Registered by the built-in plugin under the short names of
:data:`BUILTIN_WRITERS`.
"""

from __future__ import annotations

import numpy as np

from da_toolkit.data.io import atomic_path
from da_toolkit.inference.colorize import colorize, side_by_side
from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.png16 import LICENCE_KEY, png_text, write_png16
from da_toolkit.inference.pointcloud import (
    Intrinsics,
    backproject,
    disparity_to_depth,
    write_ply,
)
from da_toolkit.inference.video import DepthVideoWriter
from da_toolkit.inference.writer_base import DepthWriter
from da_toolkit.models.licence import licence_line

__all__ = ["BUILTIN_WRITERS", "ColormapWriter", "DepthVideoWriter", "DepthWriter", "NpyWriter", "PlyWriter", "Png16Writer"]


def licence_text(item: PredictionItem) -> dict[str, str]:
    """The plain ``Licence`` PNG text chunk of an item's model (``model weights licence ...``)."""
    return {LICENCE_KEY: licence_line(item.provenance)}


class NpyWriter(DepthWriter):
    """``.npy`` float32 ``(H,W)`` at the original size (disparity or metres, as the model outputs)."""

    def __init__(self, output_dir: str | None = None, suffix: str = ".npy", overwrite: bool = False) -> None:
        super().__init__(output_dir, suffix, overwrite)

    def write_item(self, item: PredictionItem) -> None:
        """Write the item's depth map as float32 ``.npy``, atomically."""
        assert item.depth is not None
        with atomic_path(self.output_path(item.meta)) as tmp, open(tmp, "wb") as f:
            np.save(f, np.asarray(item.depth, dtype=np.float32))


class Png16Writer(DepthWriter):
    """16-bit grayscale PNG; ``depth = value * scale + offset`` recorded in the ``da_toolkit`` text chunk.

    The chunk's JSON also records ``kind``, ``units``, the weights' ``licence`` (``"unknown"`` when
    the model carries none) and ``origin``; a plain ``Licence`` text chunk repeats the licence.

    Args:
        scale: fixed units per step (e.g. ``0.001`` = millimetres for metric models); ``None``
            stretches each map's range over 0..65535 and records the per-image scale/offset.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        suffix: str = "_depth16.png",
        scale: float | None = None,
        overwrite: bool = False,
    ) -> None:
        super().__init__(output_dir, suffix, overwrite)
        if scale is not None and scale <= 0:
            raise ValueError(f"Png16Writer: scale must be > 0 or None, got {scale}")
        self.scale = scale

    def write_item(self, item: PredictionItem) -> None:
        """Write the item's depth map as a 16-bit PNG with its scale and units, atomically."""
        assert item.depth is not None
        units = "metres" if item.output_kind == "metric" else "relative disparity (bigger = nearer)"
        write_png16(self.output_path(item.meta), item.depth, self.scale, text=licence_text(item),
                    kind=item.output_kind, units=units, **item.provenance)


class ColormapWriter(DepthWriter):
    """Colourised PNG (matplotlib colormap), optionally side by side with the input image.

    Near is at the top of the colormap for both output kinds (metric depth is inverted). The
    weights' licence is recorded in a ``Licence`` PNG text chunk.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        suffix: str = "_vis.png",
        cmap: str = "Spectral_r",
        side_by_side: bool = False,
        overwrite: bool = False,
    ) -> None:
        super().__init__(output_dir, suffix, overwrite)
        import matplotlib

        if cmap not in matplotlib.colormaps:
            raise ValueError(f"ColormapWriter: unknown matplotlib colormap {cmap!r} (e.g. 'Spectral_r', 'inferno')")
        self.cmap = cmap
        self.side_by_side = side_by_side
        self.needs_image = side_by_side

    def render(self, item: PredictionItem) -> np.ndarray:
        """The ``(H,W,3)`` or ``(H,2W,3)`` uint8 picture written for ``item``."""
        assert item.depth is not None
        vis = colorize(item.depth, self.cmap, invert=item.output_kind == "metric")
        if self.side_by_side:
            if item.image is None:
                raise ValueError("side_by_side needs the input image, but the item carries none")
            vis = side_by_side(item.image, vis)
        return vis

    def write_item(self, item: PredictionItem) -> None:
        """Write the item's colourised depth map (optionally beside the image) as PNG, atomically."""
        from PIL import Image

        with atomic_path(self.output_path(item.meta)) as tmp:
            Image.fromarray(self.render(item)).save(tmp, format="PNG", pnginfo=png_text(licence_text(item)))


class PlyWriter(DepthWriter):
    """Binary PLY point cloud (x right, y down, z forward) from user-given pinhole intrinsics.

    Give ``fx``/``fy`` (and optionally ``cx``/``cy``, default image centre) in pixels of the
    original image, or ``hfov_deg``. Metric models give points in metres. Relative (disparity)
    models are converted with a stated assumption (see
    :func:`~da_toolkit.inference.pointcloud.disparity_to_depth`): shift 0, median depth =
    ``relative_median_depth`` (arbitrary units); the assumption is written in the PLY header, as
    is the licence of the model's weights (``comment model weights licence ...``). Points are
    coloured by the input image.
    """

    needs_image = True

    def __init__(
        self,
        output_dir: str | None = None,
        fx: float | None = None,
        fy: float | None = None,
        cx: float | None = None,
        cy: float | None = None,
        hfov_deg: float | None = None,
        stride: int = 1,
        relative_median_depth: float = 1.0,
        suffix: str = ".ply",
        overwrite: bool = False,
    ) -> None:
        super().__init__(output_dir, suffix, overwrite)
        if (fx is None) != (fy is None):
            raise ValueError("PlyWriter: give both fx and fy (pixels), or hfov_deg")
        if fx is None and hfov_deg is None:
            raise ValueError("PlyWriter: intrinsics are required: fx and fy (pixels) or hfov_deg (degrees)")
        if stride < 1:
            raise ValueError(f"PlyWriter: stride must be >= 1, got {stride}")
        self.fx, self.fy, self.cx, self.cy, self.hfov_deg = fx, fy, cx, cy, hfov_deg
        self.stride = stride
        self.relative_median_depth = relative_median_depth

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """The camera matrix used for an image of this size."""
        if self.fx is not None and self.fy is not None:
            intr = Intrinsics(self.fx, self.fy, self.cx, self.cy)
        else:
            assert self.hfov_deg is not None
            f = Intrinsics.from_fov(self.hfov_deg, width)
            intr = Intrinsics(f.fx, f.fy, self.cx, self.cy)
        return intr.matrix(height, width)

    def write_item(self, item: PredictionItem) -> None:
        """Write the item's back-projected point cloud as PLY, atomically."""
        assert item.depth is not None
        if item.output_kind == "metric":
            depth = np.asarray(item.depth, dtype=np.float64)
            comments = ("units metres (metric model)",)
        else:
            depth = disparity_to_depth(item.depth, self.relative_median_depth)
            comments = (
                "relative model: depth = k / disparity assuming zero shift,",
                f"k chosen so that the median depth is {self.relative_median_depth} (arbitrary units)",
            )
        comments = (*comments, licence_line(item.provenance))
        K = self.intrinsics(*depth.shape)
        points, pix = backproject(depth, K, self.stride)
        colors = item.image[pix[:, 0], pix[:, 1]] if item.image is not None else None
        write_ply(self.output_path(item.meta), points, colors, comments)


BUILTIN_WRITERS: dict[str, type] = {
    "npy": NpyWriter,
    "png16": Png16Writer,
    "colormap": ColormapWriter,
    "ply": PlyWriter,
    "video": DepthVideoWriter,
}

