"""ONNX export of a ``DepthModel`` with dynamic batch, height and width, and an onnxruntime runner.

The exported graph takes ``image``: ``(B,3,H,W)`` float32 ImageNet-normalised, ``H`` and ``W``
multiples of 14 (any value), and returns ``depth``: ``(B,H,W)`` float32 relative disparity or
metres (recorded in the model's metadata as ``output_kind``).

Two pieces of the eager model turn traced sizes into Python constants, which would freeze the
exported graph to the example size; the export swaps them, for the duration of the export only,
for equivalents that keep the sizes symbolic:

* DINOv2 position embeddings: the bicubic resampling (official scale factors ``(g + 0.1) / 37``,
  cubic kernel ``a = -0.75``, border clamping, no antialias) is written as two interpolation
  matrices built from the grid size (:func:`bicubic_matrix`), plus the official shortcut that
  keeps the stored embeddings when the grid equals the stored one;
* the DPT head's final upsampling to the input size, whose target size is converted with
  ``int()`` (a one-line change in ``da_toolkit/models/decoders/dpt.py`` would make this
  patch unnecessary).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: cubic convolution coefficient used by PyTorch's (and the official) bicubic interpolation
CUBIC_A = -0.75
PATCH = 14
_SENTINEL_SIZE = (0, 0)


def _cubic_weights(t: torch.Tensor, a: float = CUBIC_A) -> list[torch.Tensor]:
    """Keys cubic-convolution weights of the 4 taps ``i-1, i, i+1, i+2`` for fractions ``t``."""

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic_matrix(out_len: Any, in_len: int, offset: float = 0.1, like: torch.Tensor | None = None) -> torch.Tensor:
    """``(out_len, in_len)`` matrix ``M`` such that ``M @ v`` resamples ``v`` like PyTorch bicubic.

    Matches ``F.interpolate(..., scale_factor=(out_len + offset) / in_len, mode="bicubic",
    align_corners=False)``: source coordinate ``(o + 0.5) * in_len / (out_len + offset) - 0.5``,
    4 taps, indices clamped to the border. ``out_len`` may be a symbolic size.
    """
    device = like.device if like is not None else None
    o = torch.arange(out_len, device=device, dtype=torch.float32)
    n_out = torch.ones_like(o).sum()  # out_len as a traced tensor
    src = (o + 0.5) * (in_len / (n_out + offset)) - 0.5
    i0 = torch.floor(src)
    t = src - i0
    matrix = torch.zeros(o.shape[0], in_len, device=device, dtype=torch.float32)
    for k, w in enumerate(_cubic_weights(t)):
        idx = (i0 + (k - 1)).clamp(0, in_len - 1).long()
        matrix = matrix + w[:, None] * nn.functional.one_hot(idx, in_len).float()
    return matrix


def dynamic_pos_embed(encoder: nn.Module, grid_h: Any, grid_w: Any) -> torch.Tensor:
    """Position embeddings ``(1, 1 + grid_h*grid_w, C)`` of a DINOv2 encoder, with symbolic sizes."""
    pos = encoder.pos_embed
    side = int(round((pos.shape[1] - 1) ** 0.5))
    dim = pos.shape[2]
    grid = pos[:, 1:].float().reshape(side, side, dim)
    mh = bicubic_matrix(grid_h, side, like=pos)
    mw = bicubic_matrix(grid_w, side, like=pos)
    # official shortcut: the stored grid is used as is when the token grid equals it
    same = (torch.ones_like(mh[:, 0]).sum() == side) & (torch.ones_like(mw[:, 0]).sum() == side)
    eye_h = nn.functional.one_hot(torch.arange(mh.shape[0], device=pos.device).clamp(max=side - 1), side).float()
    eye_w = nn.functional.one_hot(torch.arange(mw.shape[0], device=pos.device).clamp(max=side - 1), side).float()
    mh = torch.where(same, eye_h, mh)
    mw = torch.where(same, eye_w, mw)
    patch = torch.einsum("hi,ijc,wj->hwc", mh, grid, mw).reshape(1, -1, dim)
    return torch.cat([pos[:, :1].float(), patch], dim=1).to(pos.dtype)


class _SizedInterpolate:
    """Stand-in for ``torch.nn.functional`` in the DPT module: the sentinel size means "input size"."""

    def __init__(self, functional: types.ModuleType) -> None:
        self._f = functional
        self.size: tuple[Any, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def interpolate(self, x: torch.Tensor, size: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        if size is not None and tuple(size) == _SENTINEL_SIZE and self.size is not None:
            size = self.size
        return self._f.interpolate(x, size, *args, **kwargs)


class ExportableDepthModel(nn.Module):
    """``DepthModel`` wrapper whose traced graph keeps batch, height and width symbolic.

    ``forward(image (B,3,H,W))`` -> ``(B,H,W)``, numerically the same as ``model(image)``. Only
    use it inside :func:`export_patches`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.interp: _SizedInterpolate | None = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        enc = self.model.encoder(image)
        if self.interp is not None:
            self.interp.size = (image.shape[-2], image.shape[-1])
            return self.model.decoder(enc, _SENTINEL_SIZE)
        return self.model.decoder(enc, (image.shape[-2], image.shape[-1]))


@contextlib.contextmanager
def export_patches(wrapper: ExportableDepthModel) -> Iterator[None]:
    """Swap in the symbolic-size pieces (see the module docstring) and restore them afterwards."""
    import importlib

    encoder = wrapper.model.encoder
    decoder_module = importlib.import_module(type(wrapper.model.decoder).__module__)
    original_f = getattr(decoder_module, "F", None)
    has_pos = hasattr(encoder, "pos_embed_for") and hasattr(encoder, "pos_embed")
    try:
        if has_pos:
            encoder.pos_embed_for = types.MethodType(dynamic_pos_embed, encoder)
        if original_f is not None:
            wrapper.interp = _SizedInterpolate(original_f)
            decoder_module.F = wrapper.interp
        yield
    finally:
        if has_pos:
            del encoder.pos_embed_for
        if original_f is not None:
            decoder_module.F = original_f
        wrapper.interp = None


def _example_input(model: nn.Module, batch: int, size: tuple[int, int]) -> torch.Tensor:
    param = next(model.parameters())
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(param.device)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_size: tuple[int, int] = (518, 518),
    opset: int = 18,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` to ONNX (fp32) with dynamic batch / height / width; atomic.

    Args:
        model: a ``DepthModel`` (patch-14 ViT encoder + decoder).
        path: the ``.onnx`` file to write (weights embedded below 1.8 GB, else ``<path>.data``).
        example_size: ``(H, W)`` multiples of 14 used for tracing.
        opset: ONNX opset.
        metadata: extra ``metadata_props`` (``output_kind`` is always recorded).

    Returns:
        The written path.
    """
    import onnx

    if example_size[0] % PATCH or example_size[1] % PATCH:
        raise ValueError(f"example_size must be multiples of {PATCH}, got {example_size}")
    path = Path(path)
    model = model.eval().float()
    wrapper = ExportableDepthModel(model).eval()
    x = _example_input(model, 2, example_size)
    dims = {
        0: torch.export.Dim("batch", min=1, max=4096),
        2: PATCH * torch.export.Dim("grid_h", min=1, max=1024),
        3: PATCH * torch.export.Dim("grid_w", min=1, max=1024),
    }
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8e9
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.export.") as tmp:
        tmp_file = Path(tmp) / path.name
        with export_patches(wrapper), torch.no_grad():
            program = torch.onnx.export(
                wrapper,
                (x,),
                input_names=["image"],
                output_names=["depth"],
                dynamic_shapes={"image": dims},
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
        proto = program.model_proto
        props = {
            "output_kind": str(getattr(model, "output_kind", "disparity")),
            "input": "image (B,3,H,W) float32 ImageNet-normalised RGB, H and W multiples of 14",
            "output": "depth (B,H,W) float32: relative disparity (bigger = nearer) or metres",
            "producer": "da-toolkit",
            **(metadata or {}),
        }
        del proto.metadata_props[:]
        for key, value in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        if large:
            onnx.save_model(proto, tmp_file, save_as_external_data=True, location=f"{path.name}.data")
            os.replace(Path(tmp) / f"{path.name}.data", path.with_name(f"{path.name}.data"))
        else:
            onnx.save_model(proto, tmp_file)
        os.replace(tmp_file, path)
    return path


@dataclass(frozen=True)
class ParityResult:
    """One onnxruntime-vs-torch comparison."""

    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_output: float

    @property
    def relative(self) -> float:
        """``max |diff| / max |output|``."""
        return self.max_abs_diff / max(self.max_abs_output, 1e-12)


class OnnxDepthModel:
    """Run an exported model with onnxruntime: ``(B,3,H,W)`` tensor -> ``(B,H,W)`` tensor.

    ``device``: CUDA uses the CUDA execution provider when onnxruntime has it, else the CPU one.
    """

    def __init__(self, path: str | os.PathLike[str], device: torch.device | str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model file does not exist")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
            raise ValueError(f"{path}: onnxruntime cannot load this model ({exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.output_kind = meta.get("output_kind", "disparity")
        #: network-input multiple and upsampling rule recorded at export (files written before
        #: these keys existed were all patch-14 DINOv2 models upsampled with the V2 rule)
        self.input_multiple = int(meta.get("input_multiple", "14"))
        self.upsample_align_corners = meta.get("upsample_align_corners", "true").lower() == "true"
        self.input_name = self.session.get_inputs()[0].name
        self.path = path
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_model_or_path(cls, model: nn.Module | str | os.PathLike[str], device: torch.device | str = "cpu") -> OnnxDepthModel:
        """Load an ``.onnx`` file, or export a module to a temporary file first."""
        if isinstance(model, nn.Module):
            tmpdir = tempfile.TemporaryDirectory(prefix="da_toolkit_onnx_")
            path = export_onnx(model, Path(tmpdir.name) / "model.onnx", example_size=(28, 28))
            runner = cls(path, device)
            runner._tmpdir = tmpdir
            return runner
        return cls(model, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    shapes: Sequence[tuple[int, int, int]] = ((1, 518, 518), (2, 518, 686)),
) -> list[ParityResult]:
    """Compare onnxruntime with the torch model (fp32) on random inputs ``(B, H, W)``."""
    runner = OnnxDepthModel(path)
    model = model.eval().float()
    results = []
    gen = torch.Generator().manual_seed(1)
    for b, h, w in shapes:
        x = torch.randn(b, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = model(x.to(next(model.parameters()).device)).cpu().numpy()
        out = runner(x).numpy()
        if out.shape != ref.shape:
            raise ValueError(f"ONNX output shape {out.shape} differs from torch {ref.shape} for input {(b, 3, h, w)}")
        results.append(ParityResult((b, 3, h, w), float(np.abs(out - ref).max()), float(np.abs(ref).max())))
    return results


def copy_model_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy an exported model (and its external data) atomically."""
    src, dst = Path(src), Path(dst)
    for s, d in ((src, dst), (src.with_name(f"{src.name}.data"), dst.with_name(f"{dst.name}.data"))):
        if s.exists():
            tmp = d.with_name(f".{d.name}.tmp")
            shutil.copyfile(s, tmp)
            os.replace(tmp, d)
