"""File decoding and atomic writing shared by the data sources, the pseudo-label store and inference.

Readers return numpy arrays and raise :class:`~da_toolkit.data.errors.SampleReadError` naming the
file for empty, corrupt, truncated or unsupported files. Writers are atomic: they write a temporary
file in the destination folder and ``os.replace`` it onto the final name, so a crash never leaves
a half-written file under the final name. The final file gets the permissions an ordinary write
would give it: those of the file it replaces, else ``0o666`` minus the process umask (``0644``
under umask ``022``), not the ``0600`` of a bare temporary file.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from da_toolkit.data.errors import SampleReadError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
"""File extensions (lower case) treated as images by the folder sources."""

SINTEL_TAG = 202021.25  # the float32 b"PIEH" tag at the start of Sintel .dpt / .flo files


def _load(fp: Any, where: str | Path) -> Image.Image:
    """``Image.open(fp)`` + ``load()`` with decoder failures as :class:`SampleReadError` naming ``where``."""
    try:
        img = Image.open(fp)
        img.load()
    except UnidentifiedImageError:
        raise SampleReadError(where, "not a recognised image file") from None
    except Image.DecompressionBombError as exc:
        raise SampleReadError(where, f"image too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SampleReadError(where, f"corrupt or truncated image ({exc})") from None
    return img


def _open_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise SampleReadError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise SampleReadError(path, "file is empty (0 bytes)")
    return _load(path, path)


def _to_uint8_gray(arr: np.ndarray) -> np.ndarray:
    """Integer/float single-channel array -> uint8, scaling 16-bit and float ranges."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 1.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        return np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    # 16-bit (or wider integer) greyscale: map the 16-bit range onto 8 bits
    return np.clip(arr.astype(np.int64) // 257, 0, 255).astype(np.uint8)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 ``(H, W, 3)``.

    EXIF orientation is applied. Greyscale, palette, RGBA/LA (alpha dropped), CMYK, YCbCr,
    16-bit and float images are converted to 8-bit RGB (16-bit values divided by 257).

    Raises:
        SampleReadError: missing, empty, corrupt or non-image file (the message names it).
    """
    path = Path(path)
    return _rgb_array(_open_image(path), path)


def decode_rgb(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes (a shard member) -> RGB uint8 ``(H, W, 3)``, exactly as :func:`read_rgb`.

    Raises:
        SampleReadError: empty or undecodable bytes (the message names ``where``).
    """
    if not data:
        raise SampleReadError(where, "image is empty (0 bytes)")
    return _rgb_array(_load(io.BytesIO(data), where), where)


def _rgb_array(img: Image.Image, where: str | Path) -> np.ndarray:
    try:
        ImageOps.exif_transpose(img, in_place=True)  # no pixel copy when there is nothing to rotate
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the pixels unreadable
        pass
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = _to_uint8_gray(np.asarray(img))
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SampleReadError(where, f"decoded to unexpected shape {arr.shape}, expected (H, W, 3)")
    return np.ascontiguousarray(arr)


def read_png_uint16(path: str | Path) -> np.ndarray:
    """Read a single-channel 16-bit PNG (depth maps) as uint16 ``(H, W)``, values unscaled.

    Raises:
        SampleReadError: unreadable file, or not a single-channel 16-bit (or 8-bit) image.
    """
    path = Path(path)
    img = _open_image(path)
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise SampleReadError(path, f"expected a single-channel 16-bit depth PNG, got mode {img.mode} {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.uint16)
    if arr.dtype not in (np.uint16, np.int32, np.int64, np.uint32, np.dtype(">u2"), np.dtype("<u2")):
        raise SampleReadError(path, f"expected integer depth values, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise SampleReadError(path, "depth values outside the 16-bit range 0..65535")
    return arr.astype(np.uint16)


def read_npy(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Load a ``.npy`` array without pickles; optionally require ``ndim`` (a trailing 1-axis is squeezed)."""
    path = Path(path)
    if not path.is_file():
        raise SampleReadError(path, "file does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for bad files
        raise SampleReadError(path, f"not a readable .npy array ({exc})") from None
    if ndim is not None and arr.ndim == ndim + 1 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if ndim is not None and arr.ndim != ndim:
        raise SampleReadError(path, f"expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (``Pf`` greyscale or ``PF`` colour) as float32, rows top-to-bottom.

    A colour PFM gives ``(H, W, 3)``; greyscale gives ``(H, W)``. The scale line's sign gives the
    byte order (negative = little endian); PFM rows are stored bottom-to-top and are flipped here.
    """
    path = Path(path)
    if not path.is_file():
        raise SampleReadError(path, "file does not exist")
    data = path.read_bytes()
    stream = io.BytesIO(data)
    try:
        header = stream.readline().strip()
        if header not in (b"PF", b"Pf"):
            raise ValueError(f"bad PFM header {header[:8]!r}, expected b'PF' or b'Pf'")
        dims = stream.readline().split()
        while dims and dims[0].startswith(b"#"):
            dims = stream.readline().split()
        width, height = int(dims[0]), int(dims[1])
        scale = float(stream.readline().strip())
        channels = 3 if header == b"PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        count = width * height * channels
        arr = np.frombuffer(stream.read(count * 4), dtype=dtype)
        if arr.size != count:
            raise ValueError(f"truncated: {arr.size} of {count} floats")
    except (ValueError, IndexError) as exc:
        raise SampleReadError(path, f"not a valid PFM file ({exc})") from None
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)).astype(np.float32))


def write_pfm(path: str | Path, arr: np.ndarray) -> None:
    """Write float32 ``(H, W)`` or ``(H, W, 3)`` as little-endian PFM, atomically."""
    arr = np.asarray(arr, dtype="<f4")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"write_pfm expects (H, W) or (H, W, 3), got {arr.shape}")
    header = b"PF\n" if arr.ndim == 3 else b"Pf\n"
    header += f"{arr.shape[1]} {arr.shape[0]}\n-1.0\n".encode()
    atomic_write_bytes(path, header + np.flipud(arr).tobytes())


def read_sintel_dpt(path: str | Path) -> np.ndarray:
    """Read an MPI-Sintel ``.dpt`` depth file as float32 ``(H, W)`` (scene units).

    Layout (little endian): float32 tag 202021.25 (the bytes ``PIEH``), int32 width, int32
    height, then ``width * height`` float32 depths row-major.
    """
    path = Path(path)
    if not path.is_file():
        raise SampleReadError(path, "file does not exist")
    data = path.read_bytes()
    if len(data) < 12:
        raise SampleReadError(path, f"too short for a .dpt header ({len(data)} bytes)")
    tag = np.frombuffer(data[:4], "<f4")[0]
    if tag != np.float32(SINTEL_TAG):
        raise SampleReadError(path, f"bad .dpt tag {data[:4]!r}, expected b'PIEH' (float {SINTEL_TAG})")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if width <= 0 or height <= 0 or width * height > 100_000_000:
        raise SampleReadError(path, f"implausible .dpt size {width}x{height}")
    need = 12 + 4 * width * height
    if len(data) < need:
        raise SampleReadError(path, f"truncated .dpt: {len(data)} bytes, expected {need}")
    return np.frombuffer(data[12:need], "<f4").reshape(height, width).astype(np.float32)


def write_sintel_dpt(path: str | Path, depth: np.ndarray) -> None:
    """Write float32 ``(H, W)`` as an MPI-Sintel ``.dpt`` file, atomically."""
    depth = np.asarray(depth, dtype="<f4")
    if depth.ndim != 2:
        raise ValueError(f"write_sintel_dpt expects (H, W), got {depth.shape}")
    head = np.array([SINTEL_TAG], "<f4").tobytes() + np.array([depth.shape[1], depth.shape[0]], "<i4").tobytes()
    atomic_write_bytes(path, head + depth.tobytes())


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no read-only query elsewhere: set and restore at once
    os.umask(mask)
    return mask


def ordinary_file_mode(path: str | Path) -> int:
    """Permission bits an ordinary ``open(path, "w")`` would leave on ``path``.

    An existing file keeps its mode; a new one gets ``0o666 & ~umask`` (``0o644`` under ``022``).
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def fsync_dir(path: str | Path) -> None:
    """Call fsync on a directory so that a rename inside it survives a power loss (no-op where unsupported)."""
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success ``os.replace`` it onto ``path``.

    For libraries that write by file name (PIL, imageio, safetensors): the temporary name keeps
    the target's suffix so that format detection by extension still works. The file is given
    :func:`ordinary_file_mode` before the rename. With ``durable=True`` the file and then the
    folder are fsync'd, so that the new content (not an empty file) survives a power loss. On an
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, ordinary_file_mode(path))
        if durable:
            with open(tmp_path, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The final file has :func:`ordinary_file_mode` and the folder is fsync'd after the rename. On
    an exception the temporary file is removed and ``path`` is left untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle  # type: ignore[misc]
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(Path(path).parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_npy(path: str | Path, arr: np.ndarray) -> None:
    """Save ``arr`` as ``.npy`` (no pickles) to ``path`` atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
