"""Model configurations as data: which encoder/decoder (by registered name) with which arguments.

A :class:`ModelConfig` is what presets contain and what our checkpoints record in their
metadata, so a checkpoint can rebuild its model without any code of its own.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from da_toolkit.models.depth_model import DepthModel

__all__ = ["ModelConfig", "build_model", "model_config"]


def _lookup(kind: str, name: str) -> type:
    """The class registered as ``name`` in ``kind`` (``encoders``/``decoders``), through the plugin
    registry, so that a name registered by two plugins (built-in included) raises
    :class:`~da_toolkit.plugins.PluginConflictError` naming both instead of silently picking one."""
    from da_toolkit.plugins import get_component

    return get_component(kind, name)


def _name_of(kind: str, cls: type) -> str:
    """The registered name of ``cls`` in ``kind`` (the built-in registration first)."""
    from da_toolkit.plugins import registry_for

    for name, comp in registry_for(kind).kind(kind).items():
        if comp.cls is cls:
            return name
    raise ValueError(f"{cls.__qualname__} is not a registered {kind[:-1]}; register it through a plugin")


@dataclass(frozen=True)
class ModelConfig:
    """Encoder and decoder by registered name, with their constructor arguments."""

    encoder: str
    decoder: str
    encoder_args: Mapping[str, Any] = field(default_factory=dict)
    decoder_args: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        """A copy with constructor arguments replaced; each name goes to the encoder or the
        decoder whose constructor accepts it (unknown names raise ``TypeError``)."""
        enc_params = inspect.signature(_lookup("encoders", self.encoder)).parameters
        dec_params = inspect.signature(_lookup("decoders", self.decoder)).parameters
        enc, dec = dict(self.encoder_args), dict(self.decoder_args)
        for key, value in overrides.items():
            if key in enc_params:
                enc[key] = value
            elif key in dec_params:
                dec[key] = value
            else:
                raise TypeError(
                    f"unknown model override {key!r}: not an argument of encoder {self.encoder!r} "
                    f"({', '.join(enc_params)}) nor of decoder {self.decoder!r} ({', '.join(dec_params)})"
                )
        return ModelConfig(self.encoder, self.decoder, enc, dec)

    def to_json(self) -> str:
        return json.dumps(
            {"encoder": self.encoder, "encoder_args": dict(self.encoder_args),
             "decoder": self.decoder, "decoder_args": dict(self.decoder_args)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        missing = {"encoder", "decoder"} - set(data)
        if missing:
            raise ValueError(f"model config is missing {sorted(missing)}: {text[:200]}")
        return cls(data["encoder"], data["decoder"], data.get("encoder_args", {}), data.get("decoder_args", {}))


def build_model(config: ModelConfig) -> DepthModel:
    """Instantiate ``DepthModel(encoder, decoder)`` from a config (random initialisation)."""
    encoder = _lookup("encoders", config.encoder)(**dict(config.encoder_args))
    decoder = _lookup("decoders", config.decoder)(**dict(config.decoder_args))
    return DepthModel(encoder, decoder)


def model_config(model: DepthModel) -> ModelConfig:
    """The config that rebuilds ``model`` (needs components that record ``init_args``)."""
    parts = {}
    for kind, module in (("encoders", model.encoder), ("decoders", model.decoder)):
        args = getattr(module, "init_args", None)
        if args is None:
            raise ValueError(f"{type(module).__qualname__} does not record its init_args; cannot describe the model")
        parts[kind] = (_name_of(kind, type(module)), dict(args))
    return ModelConfig(parts["encoders"][0], parts["decoders"][0], parts["encoders"][1], parts["decoders"][1])
