"""The grid's tiles are the given frames, in reading order; padding centres an image."""

from __future__ import annotations

import numpy as np
import pytest

from mixma.augment.grid import GridConfig, make_grid, pad_to_square, parse_grid


def frames(k: int, height: int = 6, width: int = 10) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, (k, height, width, 3), dtype=np.uint8)


def test_tiles_are_the_frames_left_to_right_top_to_bottom():
    images = frames(12)
    grid = make_grid(images)
    assert grid.shape == (18, 40, 3) and grid.dtype == np.uint8
    for i, image in enumerate(images):
        r, c = divmod(i, 4)
        np.testing.assert_array_equal(grid[r * 6 : (r + 1) * 6, c * 10 : (c + 1) * 10], image)


def test_separators_lie_between_tiles_only():
    images = frames(6)
    grid = make_grid(list(images), GridConfig(rows=2, cols=3, separator=2, color=(255, 0, 128)))
    assert grid.shape == (6 * 2 + 2, 10 * 3 + 2 * 2, 3)
    assert (grid[6:8] == [255, 0, 128]).all()  # the row between the two tile rows
    assert (grid[:, 10:12] == [255, 0, 128]).all() and (grid[:, 22:24] == [255, 0, 128]).all()
    np.testing.assert_array_equal(grid[:6, :10], images[0])
    np.testing.assert_array_equal(grid[8:14, 24:34], images[5])  # last tile, bottom right


def test_frames_are_resized_to_a_common_tile():
    images = [np.full((12, 20, 3), 10 * i, np.uint8) for i in range(4)]
    images[2] = np.full((24, 40, 3), 20, np.uint8)  # a bigger frame, uniform colour
    grid = make_grid(images, GridConfig(rows=2, cols=2))
    assert grid.shape == (24, 40, 3)
    assert (grid[12:, :20] == 20).all()
    grid = make_grid(images, GridConfig(rows=1, cols=4, tile_size=(6, 8)))
    assert grid.shape == (6, 32, 3) and (grid[:, 8:16] == 10).all()


def test_grid_errors():
    with pytest.raises(ValueError, match="needs 12 frames, got 5"):
        make_grid(frames(5))
    with pytest.raises(ValueError, match="RGB"):
        make_grid(np.zeros((12, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        GridConfig(rows=0)


@pytest.mark.parametrize("text, expected", [("3x4", (3, 4)), ("2X2", (2, 2)), ("1x12", (1, 12))])
def test_parse_grid(text, expected):
    assert parse_grid(text) == expected


@pytest.mark.parametrize("text", ["3", "3x", "axb", "0x4", "3x4x5", "-1x3"])
def test_parse_grid_rejects(text):
    with pytest.raises(ValueError):
        parse_grid(text)


def test_pad_to_square_centres_the_image():
    image = frames(1, 4, 10)[0]
    square = pad_to_square(image, (1, 2, 3))
    assert square.shape == (10, 10, 3)
    np.testing.assert_array_equal(square[3:7], image)
    assert (square[:3] == [1, 2, 3]).all() and (square[7:] == [1, 2, 3]).all()
    tall = pad_to_square(frames(1, 9, 4)[0])
    assert tall.shape == (9, 9, 3) and (tall[:, :2] == 0).all() and (tall[:, 6:] == 0).all()
    square_already = frames(1, 5, 5)[0]
    np.testing.assert_array_equal(pad_to_square(square_already), square_already)
