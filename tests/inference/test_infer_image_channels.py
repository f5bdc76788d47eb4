"""Issue 19.7: `infer_image` takes RGB by default and BGR (cv2.imread, the official call) when told."""

import numpy as np
import pytest


def test_bgr_input_with_channels_bgr_equals_the_rgb_call(tiny_model, rng):
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # strongly coloured: swapping channels must change the map
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    reference = tiny_model.infer_image(rgb, input_size=28)
    np.testing.assert_array_equal(tiny_model.infer_image(bgr, input_size=28, channels="BGR"), reference)
    np.testing.assert_array_equal(tiny_model.infer_image(rgb, input_size=28, channels="RGB"), reference)
    assert not np.allclose(tiny_model.infer_image(bgr, input_size=28), reference)  # default is RGB
    assert bgr[0, 0, 2] == 255  # the caller's array is untouched


def test_bad_channel_order_is_refused(tiny_model, rng):
    with pytest.raises(ValueError, match="channels must be 'RGB' or 'BGR'"):
        tiny_model.infer_image(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), channels="rgb")
