"""What a run shows while it trains: progress lines, sample grids, TensorBoard, metrics.jsonl."""
import json
import math
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image


def to_uint8(images):
    """[-1, 1] float images [N, H, W, C] -> uint8 [N, H, W, C]."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, columns=None, min_size=128):
    """Tile uint8 images [N, H, W, C] into one uint8 grid [rows*H', columns*W', 3].

    Small images are enlarged by pixel repetition to at least `min_size` so a 4x4
    grid is still readable.
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


def save_png(array, path):
    """Save a uint8 image array, writing through a temporary file so readers never see half a PNG."""
    tmp = f"{path}.tmp.png"
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)


def format_duration(seconds):
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def progress_line(images_seen, total_images, phase, alpha, images_per_second, d_loss, g_loss, eta_seconds,
                  width=20):
    """One line per tick: bar, resolution, phase, alpha, kimg, images/s, losses, ETA."""
    done = min(images_seen / total_images, 1.0)
    bar = "#" * int(done * width) + "." * (width - int(done * width))
    return (f"[{bar}] {100 * done:5.1f}% | {phase.resolution}x{phase.resolution} {phase.name:6s} "
            f"alpha {alpha:.3f} | kimg {images_seen / 1000:.1f}/{total_images / 1000:.1f} | "
            f"{images_per_second:7.1f} img/s | D {d_loss:+.4f} G {g_loss:+.4f} | ETA {format_duration(eta_seconds)}")


class RunLog:
    """TensorBoard scalars and images plus one JSON line per tick in metrics.jsonl.

    Args:
      run_dir: the run directory (events go to it, grids to samples/).
      enabled: False on non-chief workers, which must not write.
    """

    def __init__(self, run_dir, enabled=True):
        self.run_dir = run_dir
        self.enabled = enabled
        self.samples_dir = os.path.join(run_dir, "samples")
        if enabled:
            os.makedirs(self.samples_dir, exist_ok=True)
            self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard"))

    def scalars(self, step, values):
        """Log a dict of scalars to TensorBoard and append it to metrics.jsonl."""
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    tf.summary.scalar(name, value)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), **values}) + "\n")

    def grid(self, step, name, images, columns=None):
        """Save [-1, 1] images as samples/<name>.png and as a TensorBoard image."""
        if not self.enabled:
            return None
        grid = make_grid(to_uint8(images), columns)
        path = os.path.join(self.samples_dir, f"{name}.png")
        save_png(grid, path)
        with self.writer.as_default(step=step):
            tf.summary.image(name.split("_")[0], grid[None], max_outputs=1)
        return path

    def flush(self):
        if self.enabled:
            self.writer.flush()
