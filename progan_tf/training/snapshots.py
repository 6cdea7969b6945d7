"""What a run shows while it trains: progress lines, sample grids, TensorBoard, metrics.jsonl."""
import json
import os
import time

import tensorflow as tf

from progan_tf.images import make_grid, save_png, to_uint8


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
    """TensorBoard scalars and images plus one JSON line per tick in metrics.jsonl, all under `run_dir`.

    Grids go to samples/. `enabled`: False on non-chief workers, which must not write.
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
