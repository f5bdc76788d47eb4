"""segmentation-models-pytorch (smp) decoders (U-Net, U-Net++, FPN, DeepLabV3+, ...) as depth decoders.

smp decoders take a list of ``depth + 1`` maps where entry ``i`` has stride ``2**i`` (entry 0 is
the input). :class:`SmpDecoder` lays the toolkit pyramid (``EncoderOutput.features`` with the
encoder's ``reductions``, e.g. ``[4, 8, 16, 32]``) out that way, with zero-channel placeholders for
the strides the encoder does not give (as smp itself does for transformer-style encoders), runs
the smp decoder, and puts the toolkit's depth head on it:

``conv3x3 -> head_channels``, ReLU, ``conv1x1 -> 1``, bilinear upsampling to the input size
(``align_corners=True``, as the DPT head), then the output activation:

- ``max_depth=None``: ReLU, output = relative disparity (affine-invariant, bigger = nearer);
- ``max_depth=m``: ``Sigmoid * m``, output = metric depth in metres.

The decoder is sized to its encoder in :meth:`SmpDecoder.attach` (``DepthModel`` calls it), so
any pyramid encoder fits: :class:`~da_toolkit.models.encoders.smp_encoder.SmpEncoder`, the timm /
ConvNeXt encoders, a plugin CNN. ViT encoders whose levels all share one stride do not; use the
``dpt`` decoder for them.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.decoders.dpt import init_positive_head
from da_toolkit.models.encoders.base import Encoder, EncoderOutput

__all__ = ["SMP_ARCHITECTURES", "SmpDecoder"]


@dataclass(frozen=True)
class _Arch:
    """How one smp decoder class is built from the laid-out channels."""

    cls: str  # "module:Class" inside segmentation_models_pytorch.decoders
    defaults: Mapping[str, Any] = field(default_factory=dict)  # smp's model defaults
    depth_arg: str | None = "encoder_depth"  # name of the depth argument (n_blocks for U-Nets)
    per_block: str | None = None  # a per-block channel list, cut to `depth` entries
    fixed_scale: bool = False  # upsamples by exactly 2 per level: sizes must be consistent
    note: str = ""


_UNET_CHANNELS = (256, 128, 64, 32, 16)

#: The smp decoders usable here (name -> smp class and smp's default arguments).
SMP_ARCHITECTURES: dict[str, _Arch] = {
    "unet": _Arch("unet.decoder:UnetDecoder", {"decoder_channels": _UNET_CHANNELS}, "n_blocks", "decoder_channels"),
    "unetplusplus": _Arch(
        "unetplusplus.decoder:UnetPlusPlusDecoder", {"decoder_channels": _UNET_CHANNELS}, "n_blocks", "decoder_channels",
        fixed_scale=True,
    ),
    "manet": _Arch(
        "manet.decoder:MAnetDecoder", {"decoder_channels": _UNET_CHANNELS}, "n_blocks", "decoder_channels",
        fixed_scale=True,
    ),
    "linknet": _Arch("linknet.decoder:LinknetDecoder", {"prefinal_channels": 32}, "n_blocks", fixed_scale=True),
    "fpn": _Arch("fpn.decoder:FPNDecoder", {"pyramid_channels": 256, "segmentation_channels": 128, "dropout": 0.2},
                 fixed_scale=True),
    "pan": _Arch("pan.decoder:PANDecoder", {"decoder_channels": 32},
                 note="its pyramid attention needs the deepest level >= 8x8, e.g. inputs >= 256 px at stride 32"),
    "upernet": _Arch("upernet.decoder:UPerNetDecoder", {"decoder_channels": 256}),
    "segformer": _Arch("segformer.decoder:SegformerDecoder", {"segmentation_channels": 256}),
    "deeplabv3plus": _Arch(
        "deeplabv3.decoder:DeepLabV3PlusDecoder",
        {"out_channels": 256, "atrous_rates": (12, 24, 36), "aspp_separable": True, "aspp_dropout": 0.5},
        fixed_scale=True,
        note="needs a dilated encoder (deepest stride 16 or 8, e.g. SmpEncoder output_stride: 16)",
    ),
    "pspnet": _Arch("pspnet.decoder:PSPDecoder", {"out_channels": 512, "dropout": 0.2}, None,
                    note="uses the deepest level only"),
}
#: Arguments SmpDecoder sets itself (from the encoder).
_SET_BY_US = frozenset({"encoder_channels", "encoder_depth", "n_blocks", "output_stride"})


def _layout(reductions: list[int]) -> list[int]:
    """Position of each pyramid level in smp's list (entry ``i`` at stride ``2**i``)."""
    msg = (
        f"SmpDecoder needs a pyramid whose strides are powers of 2 that double from level to level "
        f"(or stay, for dilated encoders), with the deepest at 8..32; got reductions {reductions}. "
        f"ViT encoders (one stride for every level) need the dpt decoder"
    )
    first = reductions[0] if reductions else 0
    if first < 2 or first & (first - 1):
        raise ValueError(msg)
    pos = [first.bit_length() - 1]
    for prev, cur in itertools.pairwise(reductions):
        if cur not in (prev, 2 * prev):
            raise ValueError(msg)
        pos.append(pos[-1] + 1)
    if not 3 <= pos[-1] <= 5:
        raise ValueError(msg)
    return pos


class SmpDecoder(Decoder):
    """An smp decoder + depth head: ``forward(enc: EncoderOutput, size=(H, W)) -> (B,H,W)``.

    Output: relative disparity (``max_depth=None``) or metres (``Sigmoid * max_depth``).

    Args:
        architecture: one of :data:`SMP_ARCHITECTURES` (``unet``, ``unetplusplus``, ``manet``,
            ``linknet``, ``fpn``, ``pan``, ``upernet``, ``segformer``, ``deeplabv3plus``,
            ``pspnet``).
        max_depth: ``None`` -> ReLU head (relative disparity); a float -> ``Sigmoid * max_depth``
            (metres).
        head_channels: hidden channels of the depth head.
        decoder_kwargs: keyword arguments of the smp decoder class overriding smp's defaults
            (e.g. ``{decoder_channels: [128, 64, 32, 16, 8]}`` for ``unet``,
            ``{use_norm: false}``, ``{attention_type: scse}``); channel/depth arguments come from
            the encoder.
    """

    def __init__(
        self,
        architecture: str = "unet",
        max_depth: float | None = None,
        head_channels: int = 32,
        decoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if architecture not in SMP_ARCHITECTURES:
            raise ValueError(
                f"SmpDecoder: unknown architecture {architecture!r}; choose one of {sorted(SMP_ARCHITECTURES)}"
            )
        if max_depth is not None and max_depth <= 0:
            raise ValueError(f"SmpDecoder: max_depth must be positive (metres) or None, got {max_depth}")
        if head_channels < 1:
            raise ValueError(f"SmpDecoder: head_channels must be positive, got {head_channels}")
        self.architecture = architecture
        self.max_depth = None if max_depth is None else float(max_depth)
        self.head_channels = int(head_channels)
        self.decoder_kwargs = dict(decoder_kwargs or {})
        arch = SMP_ARCHITECTURES[architecture]
        self._cls = self._smp_class(arch)
        accepted = set(inspect.signature(self._cls.__init__).parameters) - {"self"} - _SET_BY_US
        unknown = sorted(set(self.decoder_kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"SmpDecoder({architecture!r}): unknown decoder_kwargs {unknown}; "
                f"{self._cls.__name__} accepts {sorted(accepted)}"
            )
        self.in_channels: list[int] | None = None
        self.reductions: list[int] | None = None

    @staticmethod
    def _smp_class(arch: _Arch) -> type[nn.Module]:
        module, name = arch.cls.split(":")
        return getattr(importlib.import_module(f"segmentation_models_pytorch.decoders.{module}"), name)

    def attach(self, encoder: Encoder) -> None:
        """Build the smp decoder and head for ``encoder``'s channels and reductions (once)."""
        channels, reductions = list(encoder.out_channels), list(encoder.reductions)
        if self.in_channels is not None:
            if channels != self.in_channels or reductions != self.reductions:
                raise ValueError(
                    f"SmpDecoder was built for encoder channels {self.in_channels} at reductions "
                    f"{self.reductions}, the encoder gives {channels} at {reductions}"
                )
            return
        if len(channels) != len(reductions):
            raise ValueError(f"SmpDecoder: encoder gives {len(channels)} channels but {len(reductions)} reductions")
        positions = _layout(reductions)
        self._check_fit(reductions)
        depth = positions[-1]
        laid = [0] * (depth + 1)
        for p, c in zip(positions, channels):
            laid[p] = int(c)
        arch = SMP_ARCHITECTURES[self.architecture]
        kwargs: dict[str, Any] = {**arch.defaults, **self.decoder_kwargs}
        if arch.per_block is not None:
            kwargs[arch.per_block] = list(kwargs[arch.per_block])[:depth]
        if arch.depth_arg is not None:
            kwargs[arch.depth_arg] = depth
        if self.architecture == "deeplabv3plus":
            kwargs["output_stride"] = reductions[-1]
        if self.architecture == "unetplusplus" and "center" not in kwargs:
            kwargs["center"] = False
        try:
            self.body = self._cls(encoder_channels=laid, **kwargs)
        except (ValueError, TypeError, RuntimeError, KeyError) as exc:
            raise ValueError(
                f"SmpDecoder({self.architecture!r}) does not fit an encoder with channels {channels} at "
                f"reductions {reductions}: {exc}" + (f" ({arch.note})" if arch.note else "")
            ) from exc
        self._positions = positions
        self._depth = depth
        self._fixed_scale = arch.fixed_scale
        self.in_channels, self.reductions = channels, reductions
        try:
            out_ch = self._probe_channels(reductions[-1] * 8)
        except Exception:
            self.in_channels = self.reductions = None
            raise
        self.head = nn.Sequential(
            nn.Conv2d(out_ch, self.head_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(self.head_channels, 1, kernel_size=1),
        )
        if self.max_depth is None:
            init_positive_head(self.head[2])  # a fresh relative head cannot start dead (as DPT's)

    def _check_fit(self, reductions: list[int]) -> None:
        """Clear errors for the pyramid shapes an architecture cannot use."""
        dilated = len(set(reductions)) < len(reductions)
        arch = self.architecture
        if arch == "deeplabv3plus" and (reductions[-1] not in (8, 16) or 4 not in reductions):
            raise ValueError(
                f"SmpDecoder('deeplabv3plus') needs a dilated encoder with a stride-4 level and the deepest "
                f"at stride 16 or 8 (e.g. SmpEncoder output_stride: 16); got reductions {reductions}"
            )
        if dilated and SMP_ARCHITECTURES[arch].fixed_scale and arch != "deeplabv3plus":
            raise ValueError(
                f"SmpDecoder({arch!r}) upsamples by 2 per level and cannot use a dilated encoder "
                f"(reductions {reductions}); use output_stride 32 or unet / segformer / upernet / pspnet"
            )

    def _probe_channels(self, side: int) -> int:
        """Channels of the smp decoder's output, from one small forward in eval mode (no state change)."""
        assert self.in_channels is not None and self.reductions is not None
        feats = [torch.zeros(1, c, side // r, side // r) for c, r in zip(self.in_channels, self.reductions)]
        was_training = self.body.training
        self.body.eval()
        try:
            with torch.no_grad():
                out = self.body(self._smp_features(feats, (side, side)))
        except (RuntimeError, ValueError, IndexError) as exc:
            note = SMP_ARCHITECTURES[self.architecture].note
            raise ValueError(
                f"SmpDecoder({self.architecture!r}) does not fit an encoder with channels {self.in_channels} "
                f"at reductions {self.reductions}: {exc}" + (f" ({note})" if note else "")
            ) from exc
        finally:
            self.body.train(was_training)
        return int(out.shape[1])

    def _smp_features(self, feats: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        """The pyramid as smp's ``depth + 1`` list; missing strides are zero-channel maps.

        Decoders that upsample by exactly 2 per level (``fixed_scale``) get every level resized
        (bilinear) to the deepest level's size times its stride ratio when the sizes disagree
        (input sides that are not multiples of the deepest stride).
        """
        assert self.reductions is not None
        by_pos = dict(zip(self._positions, feats))
        ref = feats[-1]
        top_h, top_w, top_r = ref.shape[-2], ref.shape[-1], self.reductions[-1]
        out = []
        for i in range(self._depth + 1):
            if i in by_pos:
                x = by_pos[i]
                if self._fixed_scale:
                    k = top_r // self.reductions[self._positions.index(i)]
                    if x.shape[-2] != top_h * k or x.shape[-1] != top_w * k:
                        x = F.interpolate(x, size=(top_h * k, top_w * k), mode="bilinear", align_corners=False)
                out.append(x)
                continue
            if self._fixed_scale:
                h, w = top_h * (top_r >> i), top_w * (top_r >> i)
            elif i == 0:
                h, w = size[0], size[1]
            else:
                h, w = (size[0] + 2**i - 1) // 2**i, (size[1] + 2**i - 1) // 2**i
            out.append(ref.new_zeros((ref.shape[0], 0, h, w)))
        return out

    def forward(self, enc: EncoderOutput, size: tuple[int, int]) -> torch.Tensor:
        """Decode the pyramid into ``(B, H, W)`` with ``(H, W) = size`` (the input size)."""
        if self.in_channels is None:
            raise RuntimeError("SmpDecoder has no layers yet: attach it to an encoder (DepthModel does)")
        feats = list(enc.features)
        if len(feats) != len(self.in_channels):
            raise ValueError(f"SmpDecoder expects {len(self.in_channels)} feature levels, got {len(feats)}")
        out = self.head(self.body(self._smp_features(feats, size)))
        # size is passed through untouched (no int()), so traced/exported graphs keep it symbolic
        out = F.interpolate(out, size=(size[0], size[1]), mode="bilinear", align_corners=True)[:, 0]
        if self.max_depth is None:
            return F.relu(out)
        return torch.sigmoid(out) * self.max_depth
