"""ONNX export of a ``DepthModel`` with dynamic batch, height and width, and an onnxruntime runner.

The exported graph takes ``image``: ``(B,3,H,W)`` float32 ImageNet-normalised, ``H`` and ``W``
any multiples of the model's ``input_multiple`` (14 for the DINOv2 presets, e.g. 32 for a CNN),
and returns ``depth``: ``(B,H,W)`` float32 relative disparity or metres. The file's metadata
records ``output_kind``, ``input_multiple``, ``upsample_align_corners``, the model
description (``model``, JSON in the recipe schema) and the weights' ``licence`` (``"unknown"``
when the model carries none) and ``origin``, so runners need nothing else; loading a file whose
licence is restricted logs the one-line notice of :mod:`da_toolkit.models.licence`.

The export is a plain ``torch.onnx.export`` (dynamo) of the model itself: the DINOv2 encoder
resamples its position embeddings with a traceable form of the official rule when sizes are
symbolic (:func:`da_toolkit.models.encoders.dinov2.traceable_pos_embed`) and the DPT decoder
passes sizes through untouched, so no model internals are patched here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from da_toolkit.models.encoders.dinov2 import bicubic_matrix
from da_toolkit.models.inference_core import align_corners_of, input_multiple
from da_toolkit.models.licence import UNKNOWN, notify_licence, provenance

__all__ = ["OnnxDepthModel", "ParityResult", "bicubic_matrix", "check_onnx", "copy_model_file",
           "default_check_shapes", "default_example_size", "export_onnx"]


def _example_input(model: nn.Module, batch: int, size: tuple[int, int]) -> torch.Tensor:
    param = next(model.parameters())
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(param.device)


def default_example_size(multiple: int) -> tuple[int, int]:
    """Tracing size: a small non-square grid (4 x 6 multiples) that no dimension specialises on."""
    return 4 * multiple, 6 * multiple


def default_check_shapes(multiple: int) -> list[tuple[int, int, int]]:
    """Parity-check shapes ``(B, H, W)`` that differ from the tracing size in batch, height and width."""
    return [(1, 5 * multiple, 5 * multiple), (2, 3 * multiple, 7 * multiple)]


def _description_json(model: nn.Module) -> str | None:
    try:
        from da_toolkit.models.describe import describe_model

        return json.dumps(describe_model(model), sort_keys=True)
    except Exception:  # noqa: BLE001 - a model that cannot describe itself exports without it
        return None


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    example_size: tuple[int, int] | None = None,
    opset: int = 18,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` to ONNX (fp32) with dynamic batch / height / width; atomic.

    Args:
        model: a ``DepthModel`` (any encoder that traces + decoder); cast to fp32 eval mode.
        path: the ``.onnx`` file to write (weights embedded below 1.8 GB, else ``<path>.data``).
        example_size: ``(H, W)`` used for tracing, multiples of ``model.input_multiple``
            (default :func:`default_example_size`).
        opset: ONNX opset.
        metadata: extra ``metadata_props`` (``output_kind``, ``input_multiple``,
            ``upsample_align_corners``, ``model``, ``licence`` and ``origin`` are always recorded).

    Returns:
        The written path. Height and width of the graph step by the model's input multiple.
    """
    import onnx

    m = input_multiple(model)
    example_size = default_example_size(m) if example_size is None else tuple(example_size)  # type: ignore[assignment]
    if example_size[0] % m or example_size[1] % m or min(example_size) < m:
        raise ValueError(f"example_size must be positive multiples of the model's input multiple {m}, got {example_size}")
    path = Path(path)
    model = model.eval().float()
    param = next(model.parameters())
    x = torch.randn(2, 3, *example_size, generator=torch.Generator().manual_seed(0)).to(param.device)
    dims = {
        0: torch.export.Dim("batch", min=1, max=4096),
        2: m * torch.export.Dim("grid_h", min=1, max=1024),
        3: m * torch.export.Dim("grid_w", min=1, max=1024),
    }
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8e9
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.export.") as tmp:
        tmp_file = Path(tmp) / path.name
        with torch.no_grad():
            program = torch.onnx.export(
                model,
                (x,),
                input_names=["image"],
                output_names=["depth"],
                dynamic_shapes=({0: dims[0], 2: dims[2], 3: dims[3]},),
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
        proto = program.model_proto
        props = {
            "output_kind": str(getattr(model, "output_kind", "disparity")),
            "input_multiple": str(m),
            "upsample_align_corners": str(align_corners_of(model)).lower(),
            "input": f"image (B,3,H,W) float32 ImageNet-normalised RGB, H and W multiples of {m}",
            "output": "depth (B,H,W) float32: relative disparity (bigger = nearer) or metres",
            "producer": "da-toolkit",
            # the weights' licence travels with the file ("unknown" when the model carries none)
            **provenance(model),
        }
        description = _description_json(model)
        if description is not None:
            props["model"] = description
        props.update(metadata or {})
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
        #: licence / origin of the weights recorded at export (files from before: "unknown")
        self.provenance = {k: meta[k] for k in ("licence", "origin") if k in meta} or {"licence": UNKNOWN}
        self.provenance.setdefault("licence", UNKNOWN)
        notify_licence(meta.get("licence"), meta.get("origin"))
        self.input_name = self.session.get_inputs()[0].name
        self.path = path
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def from_model_or_path(cls, model: nn.Module | str | os.PathLike[str], device: torch.device | str = "cpu") -> OnnxDepthModel:
        """Load an ``.onnx`` file, or export a module to a temporary file first."""
        if isinstance(model, nn.Module):
            tmpdir = tempfile.TemporaryDirectory(prefix="da_toolkit_onnx_")
            path = export_onnx(model, Path(tmpdir.name) / "model.onnx")
            runner = cls(path, device)
            runner._tmpdir = tmpdir
            return runner
        return cls(model, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the ONNX model: ``x`` (B,3,H,W) ImageNet-normalised -> (B,H,W) on ``x``'s device."""
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    shapes: Sequence[tuple[int, int, int]] | None = None,
) -> list[ParityResult]:
    """Compare onnxruntime with the torch model (fp32) on random inputs ``(B, H, W)``
    (default :func:`default_check_shapes` of the model's input multiple)."""
    runner = OnnxDepthModel(path)
    model = model.eval().float()
    if shapes is None:
        shapes = default_check_shapes(input_multiple(model))
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
