"""Official preprocessing: target sizes (hand-worked), normalisation, resize and upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.models.preprocess import (
    DEFAULT_MAX_PIXELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalize,
    prepare_image,
    target_size,
    upsample_prediction,
)

# Hand-worked with the official rule: scale = 518 / shorter side; each side * scale rounded to
# the nearest multiple of 14, rounded up when that is below 518.
#   480x640:  scale 1.0792; 640*1.0792 = 690.67 -> 690.67/14 = 49.33 -> 49*14 = 686
#   375x1242: scale 1.3813; 1242*1.3813 = 1715.62 -> 122.54 -> 123*14 = 1722
#   100x100:  518x518 (37*14)
#   1000x300: scale 1.7267; 1000*1.7267 = 1726.67 -> 123.33 -> 123*14 = 1722
#   518x700:  700 -> 50*14 = 700 exactly
#   500x511:  scale 1.036; 511*1.036 = 529.4 -> 37.81 -> 38*14 = 532
#   600x600:  scale 0.8633 (downscale) -> 518x518
#   1080x1920: scale 0.4796; 1920*0.4796 = 920.89 -> 65.78 -> 66*14 = 924
CASES = [
    ((480, 640), (518, 686)),
    ((375, 1242), (518, 1722)),
    ((100, 100), (518, 518)),
    ((1000, 300), (1722, 518)),
    ((518, 700), (518, 700)),
    ((500, 511), (518, 532)),
    ((600, 600), (518, 518)),
    ((1080, 1920), (518, 924)),
]


@pytest.mark.parametrize(("hw", "expected"), CASES)
def test_target_size_table(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert target_size(*hw) == expected


def test_target_size_rounds_up_below_bound() -> None:
    # 364/14 = 26; with input_size 370 the nearest multiple (364 + ...) must not fall below 370.
    # 370x370: 370/14 = 26.43 -> nearest 26*14 = 364 < 370 -> rounded up to 27*14 = 378.
    assert target_size(370, 370, input_size=370) == (378, 378)


def test_target_size_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        target_size(0, 10)


def test_absurd_aspect_ratio_is_refused_naming_sizes_and_limit() -> None:
    # 10000x10: scale 51.8 -> 518000x518 (hand-worked), 268 M pixels > the 50 M default.
    with pytest.raises(ValueError) as info:
        target_size(10000, 10)
    msg = str(info.value)
    assert "10000x10" in msg and "518000x518" in msg and "50,000,000" in msg and "max_pixels" in msg
    assert target_size(10000, 10, max_pixels=None) == (518000, 518)  # the guard only refuses
    assert target_size(10, 10000, max_pixels=None) == (518, 518000)
    # the limit is configurable and inclusive: 518x686 = 355348 pixels
    assert target_size(480, 640, max_pixels=518 * 686) == (518, 686)
    with pytest.raises(ValueError, match="518x686"):
        target_size(480, 640, max_pixels=518 * 686 - 1)
    with pytest.raises(ValueError, match="max_pixels"):
        target_size(480, 640, max_pixels=0)


def test_default_guard_keeps_official_sizes_for_normal_images() -> None:
    assert DEFAULT_MAX_PIXELS == 50_000_000
    for hw, expected in CASES:
        assert target_size(*hw, max_pixels=None) == expected == target_size(*hw)
    # an 8K frame and a 1:50 strip still pass at the default
    assert target_size(4320, 7680) == (518, 924)
    assert target_size(100, 5000) == (518, 25900)


def test_prepare_image_and_infer_image_apply_the_guard() -> None:
    from da_toolkit.models import load_model

    strip = np.zeros((2000, 2, 3), dtype=np.uint8)  # scale 259 -> 518000x518 at 518
    with pytest.raises(ValueError, match="2000x2"):
        prepare_image(strip)
    with pytest.raises(ValueError, match=r"28x28 .*max_pixels=783"):
        prepare_image(np.zeros((20, 20, 3), dtype=np.uint8), input_size=28, max_pixels=783)
    assert prepare_image(np.zeros((20, 20, 3), dtype=np.uint8), input_size=28, max_pixels=784).shape == (1, 3, 28, 28)
    model = load_model("tiny")
    with pytest.raises(ValueError, match="2000x2"):
        model.infer_image(strip)
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="28x56"):
        model.infer_image(rgb, input_size=28, max_pixels=28 * 56 - 1)
    assert model.infer_image(rgb, input_size=28, max_pixels=None).shape == (20, 40)


def test_normalize_matches_hand_computation() -> None:
    x = torch.rand(2, 3, 4, 5)
    out = normalize(x)
    for c in range(3):
        expected = (x[:, c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[:, c], expected)
    with pytest.raises(ValueError, match="RGB"):
        normalize(torch.rand(2, 4, 4, 5))


def test_prepare_image_shape_and_values() -> None:
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red, constant: bicubic keeps constants exactly
    x = prepare_image(rgb)
    assert x.shape == (1, 3, 518, 686) and x.dtype == torch.float32
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1],
                -IMAGENET_MEAN[2] / IMAGENET_STD[2]]
    for c in range(3):
        assert torch.allclose(x[0, c], torch.full_like(x[0, c], expected[c]), atol=1e-5)


def test_prepare_image_matches_independent_cv2_pipeline() -> None:
    import cv2

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    x = prepare_image(rgb, input_size=56)
    th, tw = target_size(50, 70, input_size=56)
    ref = cv2.resize(rgb / 255.0, (tw, th), interpolation=cv2.INTER_CUBIC)
    ref = (ref - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].numpy(), ref.transpose(2, 0, 1), atol=1e-5)


def test_prepare_image_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        prepare_image(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H,W,3\)"):
        prepare_image(np.zeros((10, 10), dtype=np.uint8))


def test_upsample_prediction_bilinear_align_corners() -> None:
    # A 2x2 map upsampled to 3x3 with align_corners=True: the centre is the mean of the corners,
    # edge midpoints the mean of their two corners.
    pred = torch.tensor([[[0.0, 2.0], [4.0, 6.0]]])
    out = upsample_prediction(pred, (3, 3))
    expected = torch.tensor([[[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [4.0, 5.0, 6.0]]])
    torch.testing.assert_close(out, expected)
    assert out.min() >= pred.min() and out.max() <= pred.max()


def test_torch_resize_is_close_to_opencv() -> None:
    """The documented gap between the batched torch resize and the official OpenCV one."""
    import cv2

    from da_toolkit.models.preprocess import resize_images

    img = np.random.default_rng(1).random((48, 64, 3))
    ref = cv2.resize(img, (70, 56), interpolation=cv2.INTER_CUBIC)
    ours = resize_images(torch.from_numpy(img).permute(2, 0, 1)[None], (56, 70))[0].permute(1, 2, 0).numpy()
    diff = np.abs(ours - ref)
    assert diff.max() < 5e-4  # sub-pixel position quantisation in OpenCV only
    assert diff.max() > 0  # not the same implementation
