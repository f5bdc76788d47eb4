"""Every extension point of da-toolkit.

A plugin is a module (or object) with functions decorated by :data:`da_toolkit.hookimpl` whose
names match the hooks below. Rules common to every hook:

* a hook takes no arguments and returns a mapping ``name -> class`` (classes, not instances:
  recipes instantiate them with ``class_path`` + ``init_args``); ``None`` adds nothing;
* names are what recipes, :func:`da_toolkit.plugins.get_component` and ``da-toolkit plugins``
  use; a name must be unique within its kind across all plugins, the built-in one included (a
  clash is an error naming both plugins; prefix names with your plugin's name);
* each class must subclass the base class of its kind (the table
  :data:`da_toolkit.builtin.KINDS`: ``Encoder``, ``Decoder``, ``nn.Module``, ``Dataset``,
  ``torchmetrics.Metric``, Lightning's ``BasePredictionWriter``); other values are reported as
  failures of the plugin and skipped;
* a hook is called once per process, when its kind is first needed (looking up an encoder
  collects the encoders only; ``da-toolkit plugins`` collects every kind): return the same
  mapping on every call, and keep hooks (and the plugin module's imports) cheap.

Third-party packages declare ``[project.entry-points.da_toolkit] NAME = "module"`` in their
``pyproject.toml``; installing the package is enough for the toolkit to load it. The built-in
components are registered by :mod:`da_toolkit.builtin` through these same hooks. See
``docs/plugins.md`` for the authoring guide.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "da_toolkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def da_toolkit_encoders() -> dict[str, type]:
    """Register encoders.

    Each class is an ``nn.Module`` subclass of ``da_toolkit.models.encoders.base.Encoder``:
    ``forward(x: (B,3,H,W) ImageNet-normalised) -> EncoderOutput(features, cls_tokens)`` with
    ``features[i]`` of shape ``(B, out_channels[i], H / reductions[i], W / reductions[i])``; it
    exposes ``out_channels``, ``reductions`` and ``patch_size`` (``None`` for CNNs).
    """


@hookspec
def da_toolkit_decoders() -> dict[str, type]:
    """Register decoders.

    Each class is a subclass of ``da_toolkit.models.decoders.base.Decoder``:
    ``forward(enc: EncoderOutput, size: (H, W)) -> (B,H,W)``
    relative disparity or metres, depending on its head activation; it exposes ``output_kind``
    (``"disparity"`` or ``"metric"``) and may define ``attach(encoder)``, which ``DepthModel``
    calls to size the decoder to the encoder's ``out_channels``/``reductions``. Layer indices and
    patch size belong to the encoder, never to the decoder.
    """


@hookspec
def da_toolkit_perturbations() -> dict[str, type]:
    """Register perturbations (strong augmentations applied on the training device).

    Each class is an ``nn.Module`` taking ``images: (B,3,H,W) float in [0,1]``. Photometric ones
    return the perturbed batch and can be replayed from recorded parameters
    (``sample_params`` then ``apply``); mixing ones (CutMix) return the mixed batch, the box mask
    and the pairing of source indices.
    """


@hookspec
def da_toolkit_losses() -> dict[str, type]:
    """Register losses.

    Each class is an ``nn.Module`` returning a scalar tensor. Depth losses take predictions and
    targets ``(B,H,W)`` and a bool mask ``(B,H,W)`` (True = valid); feature losses take feature
    maps ``(B,C,h,w)``. An empty mask gives a zero loss that still backpropagates.
    """


@hookspec
def da_toolkit_datasources() -> dict[str, type]:
    """Register data sources.

    Each class is a map-style ``torch.utils.data.Dataset`` whose items are sample dicts (see
    ``docs/architecture.md``: ``image`` uint8 (H,W,3), optional ``depth`` + ``depth_kind`` +
    ``valid``, optional ``seg`` and ``intrinsics``, and ``meta`` with ``source``, ``id`` and
    ``image_ref``). Unreadable files raise ``da_toolkit.data.errors.SampleReadError`` naming the
    file. Subclass ``da_toolkit.data.sources.base.DataSource`` and build samples with
    ``make_sample``.
    """


@hookspec
def da_toolkit_metrics() -> dict[str, type]:
    """Register evaluation metrics.

    Each class is a ``torchmetrics.Metric`` (e.g. ``DepthMetrics``): ``update(pred, target,
    mask)`` with ``(B,H,W)`` tensors and a bool mask (True = valid), ``compute() -> dict`` of
    scalar tensors.
    """


@hookspec
def da_toolkit_writers() -> dict[str, type]:
    """Register prediction writers (output formats of ``da-toolkit predict``).

    Each class is a Lightning ``BasePredictionWriter`` (use
    ``da_toolkit.inference.writer_base.DepthWriter``) that writes one depth map per input item,
    atomically, and skips items already written.
    """
