"""Images/s of progan-prepare on a folder of 256x256 JPEGs (generated in a temporary directory).

Times `prepare_dataset` end to end (decode, 4x4..256x256 pyramid, encode, write, the
worker pool's start-up included) for each worker count.

  python benchmarks/data_prep.py --num_images=512 --workers=1,2 --out=data_prep_benchmark.json
"""
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from progan_tf.data import prepare, sources

flags.DEFINE_integer("num_images", 512, "JPEGs to generate and prepare.")
flags.DEFINE_integer("resolution", 256, "Side of the generated JPEGs (and the prepared maximum).")
flags.DEFINE_list("workers", ["1", "2"], "Worker counts to time (0 = automatic).")
flags.DEFINE_string("out", "data_prep_benchmark.json", "Where to write the JSON result.")
FLAGS = flags.FLAGS


def write_jpegs(directory, count, resolution, seed=0):
    """Smooth random colour fields plus noise: JPEG-realistic content, cheap to make."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:resolution, 0:resolution] / resolution
    for i in range(count):
        phase = rng.uniform(0, 6.3, (3, 2))
        image = 127 + 100 * np.sin(6 * xs[..., None] + phase[:, 0]) * np.cos(4 * ys[..., None] + phase[:, 1])
        image += rng.normal(0, 8, image.shape)  # [R, R, 3]
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(directory, f"{i:05d}.jpg"),
                                                                       quality=90)


def main(argv):
    del argv
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "jpegs")
        os.makedirs(images)
        write_jpegs(images, FLAGS.num_images, FLAGS.resolution)
        source = sources.FolderSource(images)
        for workers in map(int, FLAGS.workers):
            out_dir = os.path.join(tmp, f"prepared_{workers}")
            begin = time.perf_counter()
            manifest = prepare.prepare_dataset(source, out_dir, max_resolution=FLAGS.resolution, workers=workers,
                                               progress=False)
            seconds = time.perf_counter() - begin
            rows.append({"workers": workers or "auto", "images": manifest["num_images"],
                         "seconds": round(seconds, 2), "images_per_second": round(manifest["num_images"] / seconds, 1),
                         "bytes_written": manifest["bytes"]})
    print(f"{'workers':>8} {'images':>7} {'seconds':>8} {'images/s':>9} {'MiB':>7}")
    for r in rows:
        print(f"{r['workers']:>8} {r['images']:>7} {r['seconds']:>8.2f} {r['images_per_second']:>9.1f} "
              f"{r['bytes_written'] / 2**20:>7.1f}")
    with open(FLAGS.out, "w") as f:
        json.dump({"machine_cpus": os.cpu_count(), "load_average": os.getloadavg(),
                   "resolution": FLAGS.resolution, "results": rows}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
