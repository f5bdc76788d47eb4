"""Any segmentation-models-pytorch (smp) encoder as a toolkit encoder, with local weights only.

smp encoders (``resnet34``, ``efficientnet-b0``, ``mit_b0``, ``mobileone_s0``, ... and every timm
backbone as ``tu-<timm name>``) return ``depth + 1`` maps: stage 0 is the input itself (stride 1),
stage ``i`` has stride ``2**i`` (capped at ``output_stride`` for dilated encoders); transformer-style
backbones (MiT, ConvNeXt, Swin) give a zero-channel placeholder at stage 1. :class:`SmpEncoder`
returns the chosen stages as the toolkit pyramid (``EncoderOutput``; no class tokens), so both the
toolkit's DPT decoder and :class:`~da_toolkit.models.decoders.smp_decoder.SmpDecoder` consume it.

Nothing is ever downloaded: the smp encoder is always built with ``encoder_weights=None`` (random
initialisation); ``weights`` is a local file (safetensors, or a weights-only ``torch.save`` file)
holding the encoder's tensors. Accepted layouts: an smp encoder state dict, the ``encoder.*`` part of
a trained smp model (e.g. an in-domain U-Net), a timm checkpoint of the ``tu-`` backbone, each
optionally wrapped in ``state_dict``/``model`` and prefixed ``module.``/``model.``. RGB weights of
the first convolution are adapted to ``in_channels != 3`` with smp's rule (1 channel: sum over
RGB; ``n`` channels: RGB repeated cyclically, scaled by ``3/n``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from da_toolkit.models.encoders.base import Encoder, EncoderOutput

__all__ = ["SmpEncoder", "load_smp_encoder_weights"]

#: smp encoders have at most this many stages after the input stage.
_MAX_DEPTH = 5
#: Prefixes a checkpoint may put before the encoder's own parameter names.
_STRIP_PREFIXES = ("", "module.", "model.", "encoder.", "model.encoder.", "module.encoder.")


def _check_weights_arg(name: str, weights: object) -> str | None:
    """``weights`` as a local file path, or a clear error (never a download name)."""
    if weights is None:
        return None
    if isinstance(weights, bool) or not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"SmpEncoder({name!r}): weights must be a path to a local weights file or null, got "
            f"{weights!r}; smp/timm downloads are never used"
        )
    path = os.fspath(weights)
    if os.path.isfile(path):
        return path
    looks_like_name = os.sep not in path and "/" not in path and not os.path.splitext(path)[1]
    if looks_like_name:
        raise ValueError(
            f"SmpEncoder({name!r}): weights={path!r} looks like an smp/timm pretrained-weights name; "
            f"nothing is downloaded here. Download the encoder weights yourself and pass the local "
            f"file path (safetensors or .pth), e.g. weights: /ckpt/{name}.safetensors"
        )
    raise FileNotFoundError(f"SmpEncoder({name!r}): weights file not found: {path}")


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB conv weight ``(O,3,k,k)`` -> ``(O,in_channels,k,k)`` with smp's rule (see module)."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    idx = torch.arange(in_channels) % weight.shape[1]
    return weight[:, idx] * (weight.shape[1] / in_channels)


def _map_keys(sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The renaming of ``sd`` (strip one known prefix, optionally add ``model.``) that covers the
    most of ``target``'s keys."""
    best: dict[str, torch.Tensor] = {}
    for strip in _STRIP_PREFIXES:
        for add in ("", "model."):
            cand = {add + k[len(strip):]: v for k, v in sd.items() if k.startswith(strip)}
            if sum(k in target for k in cand) > sum(k in target for k in best):
                best = cand
    return best


def load_smp_encoder_weights(module: nn.Module, path: str | os.PathLike[str], in_channels: int = 3) -> None:
    """Load a local weights file into an smp encoder ``module`` (layouts: see the module docstring).

    Every parameter and buffer of ``module`` must be in the file (``num_batches_tracked`` may be
    absent); keys of the file that the encoder lacks (classifier heads, decoder of a full smp
    model) are ignored. Raises ``WeightsMismatchError`` naming the file and the keys otherwise.
    """
    from da_toolkit.models.weights.errors import WeightsMismatchError
    from da_toolkit.models.weights.safe import (
        as_state_dict,
        is_safetensors,
        read_safetensors,
        read_torch,
    )

    p = Path(path)
    raw = read_safetensors(p)[0] if is_safetensors(p) else read_torch(p)
    sd, _ = as_state_dict(raw, p)
    target = module.state_dict()
    mapped = _map_keys(sd, target)
    fixed: dict[str, torch.Tensor] = {}
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for key, want in target.items():
        if key not in mapped:
            continue
        got = mapped[key]
        if got.shape != want.shape and got.dim() == 4 and got.shape[1] == 3 and want.shape[1] == in_channels \
                and got.shape[0] == want.shape[0] and got.shape[2:] == want.shape[2:]:
            got = _adapt_first_conv(got, in_channels)
        if got.shape != want.shape:
            mismatched.append((key, tuple(got.shape), tuple(want.shape)))
            continue
        fixed[key] = got
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing or mismatched:
        raise WeightsMismatchError(os.fspath(path), missing, [], mismatched)
    module.load_state_dict(fixed, strict=False)


class SmpEncoder(Encoder):
    """An smp encoder by name as a pyramid: ``forward(x: (B,C,H,W)) -> EncoderOutput(features, None)``.

    ``C`` is ``in_channels``; ``x`` is normalised as the weights expect (ImageNet mean/std for
    RGB, which the toolkit's pipelines produce; for other channel counts see ``docs/domains.md``).
    ``features[k]`` is ``(B, out_channels[k], H / reductions[k], W / reductions[k])`` (rounded up
    for sides that are not multiples of the reduction).

    Args:
        name: smp encoder name (``resnet34``, ``efficientnet-b0``, ``mit_b0``, ...) or
            ``tu-<timm model>`` for any timm backbone (``tu-convnext_tiny``, ``tu-regnety_016``).
        in_channels: input channels (1 for grayscale, 4 for RGB + another channel, ...).
        levels: smp stages returned, each in ``1..5`` (stage ``i`` at stride ``2**i``), strictly
            increasing and none of them a zero-channel placeholder. ``None`` = the last four
            non-empty stages (strides 4, 8, 16, 32: what DPT needs). Add stage 1 (stride 2) for a
            U-Net with every skip connection.
        output_stride: 32, or 16 / 8 for a dilated encoder (the deeper stages keep that stride;
            where smp/timm support it; DeepLabV3+ needs 16 or 8).
        weights: a local weights file of this encoder (see the module docstring) or ``None``
            (random initialisation). Never a download name such as ``"imagenet"``.
    """

    #: the weights file is not needed again: a saved model carries the tensors
    transient_init_args: ClassVar[frozenset[str]] = frozenset({"weights"})

    def __init__(
        self,
        name: str = "resnet34",
        in_channels: int = 3,
        levels: Sequence[int] | None = None,
        output_stride: int = 32,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        path = _check_weights_arg(name, weights)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"SmpEncoder({name!r}): in_channels must be a positive integer, got {in_channels!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"SmpEncoder({name!r}): output_stride must be 8, 16 or 32, got {output_stride}")
        if levels is not None:
            levels = [int(i) for i in levels]
            if not levels or any(not 1 <= i <= _MAX_DEPTH for i in levels) or sorted(set(levels)) != levels:
                raise ValueError(
                    f"SmpEncoder({name!r}): levels must be strictly increasing stages in 1..{_MAX_DEPTH}, got {levels}"
                )
        depth = _MAX_DEPTH if levels is None else max(levels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # smp's `timm-` name notice
                # encoder_weights=None always: smp would download "imagenet" weights otherwise
                self.body = smp.encoders.get_encoder(
                    name, in_channels=in_channels, depth=depth, weights=None, output_stride=output_stride
                )
        except KeyError as exc:
            raise ValueError(
                f"SmpEncoder: unknown smp encoder {name!r}; use a name of "
                f"segmentation_models_pytorch.encoders.get_encoder_names() or 'tu-<timm model>'"
            ) from exc
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"SmpEncoder: cannot build smp encoder {name!r} (in_channels={in_channels}, depth={depth}, "
                f"output_stride={output_stride}): {exc}"
            ) from exc
        channels = list(self.body.out_channels)
        if levels is None:
            levels = [i for i in range(1, depth + 1) if channels[i] > 0][-4:]
        empty = [i for i in levels if channels[i] == 0]
        if empty:
            raise ValueError(
                f"SmpEncoder({name!r}): stages {empty} are zero-channel placeholders of this encoder "
                f"(stage channels {channels[1:]}); choose other levels"
            )
        self.name = name
        self.in_channels = in_channels
        self.levels = list(levels)
        self.out_channels = [int(channels[i]) for i in self.levels]
        self.reductions = [min(2**i, output_stride) for i in self.levels]
        self.patch_size = None
        if path is not None:
            load_smp_encoder_weights(self.body, path, in_channels)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is ``(B, in_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmpEncoder({self.name!r}): expected input of shape (B,{self.in_channels},H,W), got "
                f"{tuple(x.shape)}" + ("" if self.in_channels == 3 else
                                       " (the toolkit's data pipelines give 3-channel RGB; see docs/domains.md)")
            )

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """``x`` (B,in_channels,H,W) -> the 4 pyramid levels of the smp encoder (no class tokens)."""
        self.check_input(x)
        stages = self.body(x)
        return EncoderOutput([stages[i] for i in self.levels], None)
