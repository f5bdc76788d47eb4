"""Parity with transformers' DepthAnythingForDepthEstimation (an independent implementation).

Random weights are perturbed so that outputs vary strongly over the image, written as a Hugging
Face folder, loaded by transformers (offline, from the local folder) and by us, both directly and
after conversion to the official key names. At 518x518 both use the stored position grid, so the
outputs must agree to 1e-4 x max|output|. At non-square sizes transformers resamples position
embeddings to a target size while the official code uses scale factors (n + 0.1) / 37; there
transformers is patched with an independent numpy reference of the official rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from da_toolkit.models import DepthModel, load_model
from da_toolkit.models.keymaps import hf_to_ours, ours_to_official
from da_toolkit.models.weights import save_hf_folder

TOL = 1e-4


def _hf_model(folder: Path) -> torch.nn.Module:
    model, info = transformers.DepthAnythingForDepthEstimation.from_pretrained(
        str(folder), output_loading_info=True, local_files_only=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def _patch_official_pos_embed(hf: torch.nn.Module, reference: Callable[..., np.ndarray]) -> None:
    """Make transformers use the official resampling rule (independent numpy reference)."""
    emb = hf.backbone.embeddings

    def interpolate(embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        pos = emb.position_embeddings[0].detach().double().numpy()
        gh, gw = height // 14, width // 14
        if gh * gw == pos.shape[0] - 1 and gh == gw:
            return emb.position_embeddings
        ref = reference(pos, gh, gw)
        return torch.from_numpy(ref).to(embeddings.dtype)[None]

    emb.interpolate_pos_encoding = interpolate


def _write_random(
    preset: str, tmp_path: Path, perturb: Callable[..., None], calibrate: Callable[..., None], seed: int
) -> tuple[Path, Path, DepthModel]:
    torch.manual_seed(seed)
    src = load_model(preset)
    perturb(src, seed=seed, scale=1.0)
    calibrate(src, torch.randn(1, 3, 140, 140, generator=torch.Generator().manual_seed(seed)))
    folder = tmp_path / "hf"
    save_hf_folder(src, folder)
    from safetensors.torch import load_file

    official = tmp_path / "official.pth"
    torch.save(ours_to_official(hf_to_ours(load_file(folder / "model.safetensors"))), official)
    return folder, official, src


def _check_parity(
    preset: str,
    size: tuple[int, int],
    tmp_path: Path,
    perturb: Callable[..., None],
    calibrate: Callable[..., None],
    pos_reference: Callable[..., np.ndarray],
    seed: int = 0,
) -> None:
    folder, official, src = _write_random(preset, tmp_path, perturb, calibrate, seed)
    ours_hf = load_model(preset, weights=folder)
    ours_official = load_model(preset, weights=official)
    a, b = ours_hf.state_dict(), ours_official.state_dict()
    assert a.keys() == b.keys() == src.state_dict().keys()
    for k in a:  # both routes give exactly the source weights
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], src.state_dict()[k]), k

    hf = _hf_model(folder)
    if size[0] != size[1]:
        _patch_official_pos_embed(hf, pos_reference)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        ours = ours_hf(x)
        theirs = hf(pixel_values=x).predicted_depth
    assert ours.shape == theirs.shape == (1, *size)
    scale = theirs.abs().max()
    # outputs must vary strongly over the image, or the comparison proves little
    assert theirs.std() > 0.2 * theirs.abs().mean() and (theirs > 0).float().mean() > 0.5
    err = (ours - theirs).abs().max()
    assert err <= TOL * scale, f"{preset} {size}: max|diff| {err:.3g} > {TOL} x {scale:.3g}"
    if ours_hf.output_kind == "metric":
        assert 0 < float(ours.min()) and float(ours.max()) < float(ours_hf.max_depth)


def test_parity_v2_small_relative_518(tmp_path, perturb, calibrate, pos_reference) -> None:
    _check_parity("depth-anything-v2-vits", (518, 518), tmp_path, perturb, calibrate, pos_reference)


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset",
    [
        "depth-anything-v1-vits",
        "depth-anything-v2-metric-hypersim-vits",
        "depth-anything-v1-vitb",
        "depth-anything-v2-vitb",
        "depth-anything-v2-metric-vkitti-vitb",
    ],
)
def test_parity_518_slow(preset, tmp_path, perturb, calibrate, pos_reference) -> None:
    _check_parity(preset, (518, 518), tmp_path, perturb, calibrate, pos_reference, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(364, 518), (518, 686)])
def test_parity_non_square_small_slow(size, tmp_path, perturb, calibrate, pos_reference) -> None:
    _check_parity("depth-anything-v2-vits", size, tmp_path, perturb, calibrate, pos_reference, seed=5)


@pytest.mark.parametrize("size", [(364, 518), (518, 686)])
def test_non_square_official_rule_tiny(size, tmp_path, perturb, calibrate, pos_reference) -> None:
    """Tiny model with the real 37x37 position grid at the two non-square sizes."""
    _check_parity_tiny(size, tmp_path, perturb, calibrate, pos_reference)


def _check_parity_tiny(size, tmp_path, perturb, calibrate, pos_reference) -> None:
    preset = "tiny"
    torch.manual_seed(0)
    arch = {"img_size": 518, "depth": 4, "layer_indices": [0, 1, 2, 3]}  # HF needs distinct taps
    src = load_model(preset, **arch)
    perturb(src, seed=1, scale=1.0)
    with torch.no_grad():  # position embeddings with strong spatial structure
        src.encoder.pos_embed.mul_(20.0)
    calibrate(src, torch.randn(1, 3, 140, 140, generator=torch.Generator().manual_seed(2)))
    folder = tmp_path / "hf"
    save_hf_folder(src, folder)
    hf = _hf_model(folder)
    ours = load_model(preset, weights=folder, **arch)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = hf(pixel_values=x).predicted_depth
        _patch_official_pos_embed(hf, pos_reference)
        theirs = hf(pixel_values=x).predicted_depth
        mine = ours(x)
    scale = theirs.abs().max()
    assert theirs.std() > 0.1 * theirs.abs().mean()
    assert (mine - theirs).abs().max() <= TOL * scale
    # transformers' own size-based resampling is measurably different (why the reference exists)
    assert (plain - theirs).abs().max() > 10 * TOL * scale
