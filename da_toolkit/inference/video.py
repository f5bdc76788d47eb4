"""Video: frame decoding, temporal smoothing of per-frame scale/shift, and depth-video output.

Decoding and encoding use the ffmpeg binary shipped with ``imageio-ffmpeg`` (no network).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from da_toolkit.inference.colorize import colorize, side_by_side
from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.writer_base import DepthWriter
from da_toolkit.models.licence import licence_line


def iter_video_frames(path: str | os.PathLike[str]) -> tuple[float, Iterator[np.ndarray]]:
    """Open a video -> ``(fps, frames)``; frames are uint8 RGB ``(H,W,3)`` in order.

    Raises:
        ValueError: naming the file when ffmpeg cannot read it.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file does not exist")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
    except Exception as exc:  # noqa: BLE001 - ffmpeg errors come as various types
        raise ValueError(f"{path}: cannot read video ({exc})") from None
    w, h = meta["size"]
    fps = float(meta.get("fps") or 0.0) or 25.0

    def frames() -> Iterator[np.ndarray]:
        try:
            for raw in reader:
                yield np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
        finally:
            reader.close()

    return fps, frames()


def write_video(path: str | os.PathLike[str], frames: Sequence[np.ndarray], fps: float = 25.0) -> None:
    """Write uint8 RGB frames ``(H,W,3)`` (H, W even) as an H.264 mp4 (tests and tools)."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1, quality=8)
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Temporal flicker of a depth sequence: ``mean_t mean|d_t - d_{t-1}| / mean|d|`` (unitless)."""
    if len(frames) < 2:
        return 0.0
    stack = np.stack([np.asarray(f, np.float64) for f in frames])
    return float(np.abs(np.diff(stack, axis=0)).mean() / max(np.abs(stack).mean(), 1e-12))


class TemporalSmoother:
    """Reduce flicker by smoothing each frame's shift and scale over time.

    For frame ``d_t`` with median ``m_t`` and mean absolute deviation ``s_t``, the output is
    ``(d_t - m_t) / s_t * S_t + M_t`` where ``M_t``/``S_t`` are exponential moving averages
    (``momentum`` = weight of the past) of the medians / deviations. The spatial structure of each
    frame is kept; only its global shift/scale (the affine ambiguity of relative disparity, and
    exposure-driven jumps) is smoothed. Frames must come in order; use one smoother per video.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"temporal smoothing momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.shift: float | None = None
        self.scale: float | None = None

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        """Smooth one ``(H,W)`` frame (same units as the input)."""
        d = np.asarray(depth, np.float64)
        finite = np.isfinite(d)
        if not finite.any():
            return np.asarray(depth, np.float32)
        m = float(np.median(d[finite]))
        s = float(np.mean(np.abs(d[finite] - m)))
        if s <= 0:
            return np.asarray(depth, np.float32)
        if self.shift is None or self.scale is None:
            self.shift, self.scale = m, s
        else:
            a = self.momentum
            self.shift = a * self.shift + (1 - a) * m
            self.scale = a * self.scale + (1 - a) * s
        return ((d - m) / s * self.scale + self.shift).astype(np.float32)


class _OpenVideo:
    """An ffmpeg encoder writing into a temporary file until :meth:`finish`."""

    def __init__(self, target: Path, width: int, height: int, fps: float, comment: str | None = None) -> None:
        import imageio_ffmpeg

        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = target.with_name(f".{target.stem}.tmp{target.suffix}")
        self.size = (width + width % 2, height + height % 2)
        extra = ["-metadata", f"comment={comment}"] if comment else None  # the container's comment tag
        self.gen = imageio_ffmpeg.write_frames(str(self.tmp), self.size, fps=fps, macro_block_size=1, quality=8,
                                               output_params=extra)
        self.gen.send(None)
        self.lo: float | None = None
        self.hi: float | None = None

    def add(self, rgb: np.ndarray) -> None:
        w, h = self.size
        pad = ((0, h - rgb.shape[0]), (0, w - rgb.shape[1]), (0, 0))
        self.gen.send(np.ascontiguousarray(np.pad(rgb, pad, mode="edge")))

    def finish(self) -> None:
        self.gen.close()
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.gen.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class DepthVideoWriter(DepthWriter):
    """Colourised depth video ``output_dir/<video id><suffix>`` (H.264 mp4) for video inputs.

    The colour range follows an exponential moving average (``range_momentum``) of each frame's
    2nd/98th percentiles, so colours do not jump between frames. Image inputs are ignored. The
    file appears (atomically) when the run ends; a finished video is skipped on re-runs. The
    container's ``comment`` tag records the licence of the model's weights.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        suffix: str = "_depth.mp4",
        cmap: str = "Spectral_r",
        side_by_side: bool = False,
        range_momentum: float = 0.9,
        overwrite: bool = False,
    ) -> None:
        super().__init__(output_dir, suffix, overwrite)
        self.cmap = cmap
        self.side_by_side = side_by_side
        self.needs_image = side_by_side
        self.range_momentum = range_momentum
        self._open: dict[str, _OpenVideo] = {}

    def output_path(self, meta: dict[str, Any]) -> Path:
        """The video file of the item's source video (``<video><suffix>``)."""
        return self.output_dir / f"{meta.get('video', meta['id'])}{self.suffix}"

    def is_done(self, meta: dict[str, Any]) -> bool:
        """True for items that are no video frames, and for videos already written (unless overwrite)."""
        if meta.get("video") is None:
            return True  # not a video frame: nothing to write here
        return not self.overwrite and self.output_path(meta).exists() and meta["video"] not in self._open

    def write_item(self, item: PredictionItem) -> None:
        """Append the item's colourised depth frame to its video (opened on its first frame)."""
        assert item.depth is not None
        vid = str(item.meta["video"])
        video = self._open.get(vid)
        d = np.asarray(item.depth, np.float64)
        finite = d[np.isfinite(d)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
        if video is None:
            h, w = d.shape
            width = 2 * w if self.side_by_side else w
            video = _OpenVideo(self.output_path(item.meta), width, h, float(item.meta.get("fps") or 25.0),
                               comment=licence_line(item.provenance))
            video.lo, video.hi = float(lo), float(hi)
            self._open[vid] = video
        else:
            a = self.range_momentum
            video.lo = a * video.lo + (1 - a) * float(lo)  # type: ignore[operator]
            video.hi = a * video.hi + (1 - a) * float(hi)  # type: ignore[operator]
        vis = colorize(item.depth, self.cmap, video.lo, video.hi, invert=item.output_kind == "metric")
        if self.side_by_side:
            if item.image is None:
                raise ValueError("side_by_side needs the input frame, but the item carries none")
            vis = side_by_side(item.image, vis)
        video.add(vis)

    def close_all(self) -> None:
        """Finish every open video (called at the end of the run)."""
        for vid, video in list(self._open.items()):
            try:
                video.finish()
            except Exception as exc:  # noqa: BLE001
                video.abort()
                self.failures.append((str(video.target), f"{type(exc).__name__}: {exc}"))
                warnings.warn(f"DepthVideoWriter: could not finish {video.target}: {exc}", stacklevel=2)
            del self._open[vid]

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """Lightning hook: close every open video."""
        self.close_all()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Lightning hook: abort every open video after a failure."""
        for video in self._open.values():
            video.abort()
        self._open.clear()
