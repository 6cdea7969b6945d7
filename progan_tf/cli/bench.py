"""progan-bench: how fast this machine trains a configuration, resolution by resolution.

  progan-bench --flagfile=configs/demo.flags                       # the demo's networks and batches
  progan-bench --reference --peak --json=throughput.json           # the reference CPU config, 4..64
  progan-bench --peak_only --json=peak.json                         # this machine's float32 peak

It reads the same flags and flagfiles as progan-train (--data_dir, --run_dir and the other
flags of the run itself are accepted and not used). For each resolution the trainer's own step
(`--steps_per_call` steps per call) trains the stage's stable phase on synthetic images held in
memory (no input pipeline, nothing written):
images/s, ms/step, FLOPs per image, GFLOP/s, memory and, with --peak, the fraction of this
machine's measured convolution peak. Timed windows repeat while other processes use more
than 0.15 cores (a busy machine is reported as such). The numbers: benchmarks/RESULTS.md.
"""
from progan_tf.cli import common, options

PROGRAM = "progan-bench"
_GROUP = "Benchmark"

common.define(_GROUP, "boolean", "reference", False, "Time the reference CPU config (fmap_base 1024, fmap_max 128, "
              "latent 128, batch 32, 4x4 to --reference_resolution) instead of the training flags.")
common.define(_GROUP, "integer", "reference_resolution", 64, "Top resolution of --reference.")
common.define(_GROUP, "list", "bench_resolutions", [], "Resolutions to time (default: all of the configuration's).")
common.define(_GROUP, "boolean", "bench_fades", False, "Time the fade phases too.")
common.define(_GROUP, "integer", "bench_steps", 20, "Steps per timed window (at least).")
common.define(_GROUP, "integer", "bench_warmup", 5, "Warm-up steps per phase (tracing, allocator).")
common.define(_GROUP, "integer", "bench_repeats", 3, "Timed windows per phase (the median is reported).")
common.define(_GROUP, "float", "bench_wait", 60, "Seconds to wait per phase for a quiet machine before timing anyway.")
common.define(_GROUP, "boolean", "python_loop", False, "Call the single-step function once per step from Python "
              "instead of the steps_per_call function the training loop uses.")
common.define(_GROUP, "boolean", "peak", False, "First measure this machine's convolution peak (about a minute) and "
              "report each rate as a fraction of it.")
common.define(_GROUP, "string", "peak_json", "", "Reuse a peak measured before: a --peak_only JSON or an earlier "
              "progan-bench JSON.")
common.define(_GROUP, "boolean", "peak_only", False, "Only measure and print the peak.")
common.define(_GROUP, "string", "json", "", "Also write the results here as JSON.")


def bench_options(f):
    """Validate the benchmark's own flags (UsageError names a bad one); returns the resolutions to time (empty: all)."""
    try:
        resolutions = [int(r) for r in f.bench_resolutions]
    except ValueError:
        raise common.UsageError(f"--bench_resolutions must be integers, got {f.bench_resolutions}") from None
    common.check_at_least(f, 1, "bench_steps", "bench_repeats")
    common.check_at_least(f, 0, "bench_warmup", "bench_wait")
    if f.peak_json and f.peak:
        raise common.UsageError("give --peak (measure now) or --peak_json (reuse), not both")
    return resolutions


def main(f):
    from progan_tf.training import launch
    resolutions = bench_options(f)
    network, schedule, train = options.options_from_flags(f)
    launch.bench(network, schedule, train, resolutions, reference=f.reference and f.reference_resolution,
              fades=f.bench_fades, steps=f.bench_steps, warmup=f.bench_warmup, repeats=f.bench_repeats,
              wait=f.bench_wait, python_loop=f.python_loop, peak=f.peak, peak_json=f.peak_json,
              peak_only=f.peak_only, json_path=f.json, devices=f.devices, cpu_devices=f.cpu_devices)


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
