"""uint8 frames → normalised batches: crop geometry, resampling, normalisation, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixma.models.vision.errors import FrameError
from mixma.models.vision.preprocess import (
    center_square, check_frame, check_frames, decode_size, normalize, prepare_frame, resize,
)


def test_center_crop_at_224_is_resize_256_then_crop_224():
    """torchvision's eval transform: shorter side to 256, centre 224 → 0.875 of the shorter side."""
    for h, w in [(480, 640), (256, 256), (272, 640), (1080, 1920), (640, 480)]:
        top, left, side = center_square(h, w, 224)
        assert side == round(min(h, w) * 0.875)
        assert abs((top + side / 2) - h / 2) <= 0.5 and abs((left + side / 2) - w / 2) <= 0.5


def test_crop_of_the_decode_size_needs_no_resize():
    frame = np.random.default_rng(0).integers(0, 256, (256, 455, 3), dtype=np.uint8)  # shorter side 224 + 32
    assert decode_size(224, "center") == 256
    top, left, side = center_square(256, 455, 224)
    np.testing.assert_array_equal(prepare_frame(frame, 224), frame[top : top + side, left : left + side])


def test_full_crop_keeps_the_whole_frame():
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[:, :10] = 255  # a stripe at the left edge survives "full" but not "center"
    assert prepare_frame(frame, 64, "full")[:, 0].min() > 200
    assert prepare_frame(frame, 64, "center")[:, 0].max() == 0


def test_shrinking_averages_instead_of_aliasing():
    stripes = np.zeros((448, 448, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: point sampling would give all black or all white
    out = resize(stripes, 224, 224)
    assert abs(float(out.mean()) - 127.5) < 2 and out.std() < 2


def test_enlarging_is_bicubic():
    import cv2

    small = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize(small, 60, 40), cv2.resize(small, (60, 40), interpolation=cv2.INTER_CUBIC))


@pytest.mark.parametrize("channels_last", [True, False])
def test_normalize(channels_last):
    batch = np.random.default_rng(2).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    mean = torch.tensor([127.0, 100.0, 50.0]).reshape(1, 3, 1, 1)
    std = torch.tensor([128.0, 64.0, 32.0]).reshape(1, 3, 1, 1)
    x = normalize(batch, mean, std, channels_last=channels_last)
    expected = (batch.astype(np.float64).transpose(0, 3, 1, 2) - mean.numpy()) / std.numpy()
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    assert x.dtype == torch.float32
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert x.is_contiguous(memory_format=layout)


def test_lite_normalisation_maps_0_255_to_about_minus_one_one():
    x = normalize(np.array([[[[0, 127, 255]]]], np.uint8), torch.full((1, 3, 1, 1), 127.0),
                  torch.full((1, 3, 1, 1), 128.0), channels_last=True)
    assert x.flatten().tolist() == [-127 / 128, 0.0, 1.0]


@pytest.mark.parametrize("frames, message", [
    (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 3), np.uint8), "add a batch dimension"),
    (np.zeros((2, 8, 8, 4), np.uint8), r"\[H, W, 3\], got \[8, 8, 4\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"\[H, W, 3\]"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], "frame 1"),
    ("frames.png", "got str"),
])
def test_bad_frames(frames, message):
    with pytest.raises(FrameError, match=message):
        check_frames(frames)


def test_tensors_and_lists_are_accepted():
    frames = torch.zeros(2, 5, 6, 3, dtype=torch.uint8)
    assert check_frames(frames).shape == (2, 5, 6, 3)
    assert [f.shape for f in check_frames([np.zeros((5, 6, 3), np.uint8), np.zeros((9, 4, 3), np.uint8)])] == [
        (5, 6, 3), (9, 4, 3)]
    with pytest.raises(FrameError, match="empty|got"):
        check_frame(np.zeros((0, 4, 3), np.uint8))
