"""Images/s of the TFRecord input pipeline (PreparedDataset.dataset) at 32x32 and 256x256.

Prepares a small synthetic-content dataset in a temporary directory, then times batches
pulled from the pipeline as the trainer gets them (float32 [B, R, R, 3] in [-1, 1],
mirrored), both from memory (cached) and streamed from the shards. Compare with the
trainer's images/s at the same resolution: the pipeline must be at least 10x faster.

  python benchmarks/data_pipeline.py --num_images=2048 --out=data_pipeline_benchmark.json
"""
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from progan_tf.data import prepare
from progan_tf.data.pipeline import PreparedDataset
from progan_tf.data.sources import IndexedSource

flags.DEFINE_integer("num_images", 2048, "Images in the temporary dataset (256x256 top level).")
flags.DEFINE_list("batches", ["32:64", "256:8"], "resolution:per-replica batch pairs (the paper's batches).")
flags.DEFINE_float("seconds", 5.0, "Time each configuration for about this long (after a warm-up).")
flags.DEFINE_string("out", "data_pipeline_benchmark.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS


class RandomSource(IndexedSource):
    """Random 256x256 images for the benchmark dataset (content does not matter to throughput)."""
    kind, description, label_names, num_channels = "random", "random", None, 3

    def __init__(self, count):
        self.count = count

    def load(self, item):
        return np.random.default_rng(item).integers(0, 256, (256, 256, 3), np.uint8), None


def time_pipeline(dataset, seconds):
    it = iter(dataset)
    for _ in range(20):
        next(it)  # warm-up: fills the shuffle buffer and the prefetch queue
    images, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        images += next(it).shape[0]
    return images / (time.perf_counter() - begin)


def main(argv):
    del argv
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "bench")
        prepare.prepare_dataset(RandomSource(FLAGS.num_images), data_dir, max_resolution=256, shards=8,
                                 workers=1, progress=False)
        for pair in FLAGS.batches:
            resolution, batch = map(int, pair.split(":"))
            for mode, cache_mb in (("cached", 4096), ("streamed", 0)):
                source = PreparedDataset(data_dir, cache_mb=cache_mb)
                rate = time_pipeline(source.batches(resolution, batch, mirror=True, seed=0), FLAGS.seconds)
                rows.append({"resolution": resolution, "batch": batch, "mode": mode,
                             "images_per_second": round(rate, 1)})
    print(f"{'resolution':>10} {'batch':>6} {'mode':>9} {'images/s':>10}")
    for r in rows:
        print(f"{r['resolution']:>10} {r['batch']:>6} {r['mode']:>9} {r['images_per_second']:>10.1f}")
    with open(FLAGS.out, "w") as f:
        json.dump({"machine_cpus": os.cpu_count(), "load_average": os.getloadavg(),
                   "num_images": FLAGS.num_images, "results": rows}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
