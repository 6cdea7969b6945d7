"""Pixels in and out: the generator's [-1, 1] range, uint8, grids, PNG and GIF files.

One conversion everywhere (samples, metrics, exports, progan-generate): [-1, 1] -> [0, 1] by (x + 1) / 2, clipped,
then uint8 by rounding x * 255 to the nearest integer (ties to even, as np.rint and tf.round do).
"""
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image


def to_unit_range(images):
    """Generator output ~[-1, 1] -> float32 images clipped to [0, 1] (a TensorFlow op)."""
    return tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 0.5, 0.0, 1.0)


def unit_to_uint8(images):
    """float images in [0, 1] -> uint8 [0, 255] (numpy)."""
    return np.rint(np.clip(np.asarray(images, np.float32), 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def to_uint8(images):
    """Generator output ~[-1, 1] [N, H, W, C] -> uint8 [N, H, W, C] (numpy)."""
    return unit_to_uint8((np.asarray(images, np.float32) + np.float32(1.0)) * np.float32(0.5))


def to_png(images):
    """float32 images [N, H, W, C] in [0, 1] -> string [N] of PNG files (a TensorFlow op, for signatures)."""
    pixels = tf.cast(tf.round(images * 255.0), tf.uint8)  # [N, H, W, C]
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))


def make_grid(images, columns=None, min_size=128):
    """Tile uint8 images [N, H, W, C] into one uint8 grid [rows * H', columns * W', 3].

    Small images are enlarged by pixel repetition to at least `min_size`, so that a grid of 4x4 images is readable.
    """
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    scale = max(1, min_size // h)
    images = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)
    if c == 1:
        images = np.repeat(images, 3, axis=3)
    padded = np.zeros((rows * columns,) + images.shape[1:], np.uint8)
    padded[:n] = images
    grid = padded.reshape(rows, columns, h * scale, w * scale, 3).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * h * scale, columns * w * scale, 3)


def _pillow(image):
    """uint8 [H, W, C] -> a Pillow image (RGB, or L for one channel)."""
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)


def save_png(image, path):
    """Save uint8 [H, W, C] through a temporary file, so that readers never see half a PNG."""
    tmp = f"{path}.tmp.png"
    _pillow(image).save(tmp)
    os.replace(tmp, path)


def save_gif(frames, path, frame_ms=80):
    """Save uint8 frames [N, H, W, C] as a looping GIF."""
    first, *rest = [_pillow(frame) for frame in frames]
    tmp = f"{path}.tmp.gif"
    first.save(tmp, save_all=True, append_images=rest, duration=frame_ms, loop=0)
    os.replace(tmp, path)
