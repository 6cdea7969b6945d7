"""Seconds for a full multi-scale SWD evaluation (the paper's 16 384 images a side).

Each resolution: describe two sets of random uint8 images (generated batch by
batch, never held whole), descriptors kept on disk and memory-mapped as
`progan-eval` does for cached reals, then the distance over all levels. The
image generation itself is not timed.

  python benchmarks/metrics_swd.py --resolutions=32,256 --num_images=16384 --out=swd_bench.json
"""
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from progan_tf.metrics import swd

flags.DEFINE_list("resolutions", ["32", "256"], "Image resolutions to time.")
flags.DEFINE_integer("num_images", 16384, "Images per set (the paper uses 16384).")
flags.DEFINE_integer("batch_size", 64, "Images described per batch.")
flags.DEFINE_string("out", "metrics_swd_benchmark.json", "Where to write the JSON result.")
flags.DEFINE_string("work_dir", None, "Directory for the descriptor files (default: a temporary one).")
FLAGS = flags.FLAGS


def describe_random_set(resolution, num_images, batch_size, seed, directory):
    """Describe `num_images` random images into `directory`.

    Returns:
      (descriptors per level, seconds spent describing, excluding image generation).
    """
    rng = np.random.default_rng(seed)
    acc = swd.SWDAccumulator(resolution, seed=seed, directory=directory)
    seconds = 0.0
    for start in range(0, num_images, batch_size):
        images = rng.integers(0, 256, (min(batch_size, num_images - start), resolution, resolution, 3),
                              dtype=np.uint8)  # [n, R, R, 3]
        begin = time.perf_counter()
        acc.update(images)
        seconds += time.perf_counter() - begin
    begin = time.perf_counter()
    descriptors = acc.descriptors()
    return descriptors, seconds + time.perf_counter() - begin


def time_resolution(resolution, num_images, batch_size, work_dir):
    """Time one full SWD evaluation at `resolution`; returns a dict of timings."""
    sets = []
    for seed, name in ((0, "reals"), (1, "fakes")):
        sets.append(describe_random_set(resolution, num_images, batch_size, seed,
                                        os.path.join(work_dir, f"{resolution}_{name}")))
    begin = time.perf_counter()
    result = swd.swd_from_descriptors(sets[0][0], sets[1][0], resolution)
    distance_seconds = time.perf_counter() - begin
    describe_seconds = sets[0][1] + sets[1][1]
    return {"resolution": resolution, "num_images": num_images, "levels": len(sets[0][0]),
            "describe_seconds_per_set": describe_seconds / 2, "distance_seconds": distance_seconds,
            "total_seconds": describe_seconds + distance_seconds,
            "descriptor_gb_per_set": sum(d.nbytes for d in sets[0][0]) / 1e9,
            "swd_avg_x1e3": result["SWDx1e3_avg"]}


def main(argv):
    del argv
    rows = []
    with tempfile.TemporaryDirectory(dir=FLAGS.work_dir) as work_dir:
        for resolution in map(int, FLAGS.resolutions):
            rows.append(time_resolution(resolution, FLAGS.num_images, FLAGS.batch_size, work_dir))
            print(f"done {resolution}x{resolution}: {rows[-1]['total_seconds']:.1f} s", flush=True)
    print(f"\n{'res':>5} {'images':>7} {'levels':>6} {'describe/set s':>15} {'distance s':>11} "
          f"{'total s':>8} {'GB/set':>7}")
    for r in rows:
        print(f"{r['resolution']:>5} {r['num_images']:>7} {r['levels']:>6} {r['describe_seconds_per_set']:>15.1f} "
              f"{r['distance_seconds']:>11.1f} {r['total_seconds']:>8.1f} {r['descriptor_gb_per_set']:>7.2f}")
    with open(FLAGS.out, "w", encoding="utf-8") as f:
        json.dump({"machine_cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": rows}, f, indent=2)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
