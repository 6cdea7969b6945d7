"""Pixels in and out (progan_tf/images.py): one rounding from [-1, 1] to uint8 everywhere, grids, PNG files."""
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from progan_tf.images import make_grid, save_png, to_png, to_uint8, to_unit_range, unit_to_uint8


def test_generator_range_to_uint8_clips_and_rounds_to_the_nearest_value():
    x = np.float32([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]).reshape(1, 1, 7, 1)  # [N, H, W, C]
    # (x + 1) / 2 * 255 = -63.75, 0, 63.75, 127.5, 191.25, 255, 318.75; 127.5 is a tie, to even.
    assert to_uint8(x).ravel().tolist() == [0, 0, 64, 128, 191, 255, 255]
    np.testing.assert_array_equal(to_unit_range(x).numpy().ravel(), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    # The TensorFlow path of the exports (to_png) gives the same bytes as the numpy one.
    unit = to_unit_range(np.random.default_rng(0).uniform(-1.2, 1.2, (2, 4, 4, 3))).numpy()
    decoded = tf.io.decode_png(to_png(tf.constant(unit))[1]).numpy()
    np.testing.assert_array_equal(decoded, unit_to_uint8(unit)[1])


def test_grid_tiles_row_by_row_enlarges_small_images_and_saves_as_png(tmp_path):
    # Image i holds 16 i + 4 y + x at pixel (y, x): every image and every pixel differs.
    images = (16 * np.arange(5)[:, None, None] + 4 * np.arange(4)[:, None] + np.arange(4)).astype(np.uint8)
    grid = make_grid(images[..., None])  # [5, 4, 4, 1] -> 3 columns, 2 rows, each pixel 32x32
    assert grid.shape == (2 * 128, 3 * 128, 3) and grid.dtype == np.uint8
    small = grid[::32, ::32]  # [8, 12, 3], one value per enlarged pixel
    np.testing.assert_array_equal(grid, np.repeat(np.repeat(small, 32, axis=0), 32, axis=1))
    for i in range(6):
        row, column = divmod(i, 3)
        cell = small[4 * row:4 * row + 4, 4 * column:4 * column + 4]  # [4, 4, 3]
        expected = images[i] if i < 5 else np.zeros((4, 4), np.uint8)  # the sixth cell is empty
        np.testing.assert_array_equal(cell, np.repeat(expected[..., None], 3, axis=2), err_msg=f"cell {i}")
    save_png(grid, tmp_path / "grid.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grid.png")), grid)
    assert os.listdir(tmp_path) == ["grid.png"]
