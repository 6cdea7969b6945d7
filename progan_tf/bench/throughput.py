"""Training throughput per resolution: images/s, ms/step, FLOP/s and its fraction of this machine's peak.

  progan-bench --reference                             # the reference CPU config, 4..64
  progan-bench --flagfile=configs/demo.flags --bench_resolutions=16,32 --peak

For each resolution the stage's G, D, Gs and optimisers are built by `Trainer.build_phase` and trained by the
trainer's own step (`steps_per_call` steps per call, as the training loop runs them) on synthetic in-memory images,
so no input pipeline is timed. After a warm-up, timed windows of `--steps` steps run under the quiet-machine rule of
`peak.py` (windows where other processes used more than 0.15 cores are repeated); their median and spread are
reported. FLOPs are the analytical count of `progan_tf.bench.flops` (4 F_G + 14 F_D for WGAN-GP), which
tests/test_flops.py checks against the traced graph: executed FLOPs (conv taps on the image) for GFLOP/s and
"% of peak", nominal ones (zero padding included, the usual count) in the "%nom" column, against the nominal peak.
"""
import dataclasses
import time

import psutil
import tensorflow as tf

from progan_tf.bench import flops
from progan_tf.bench import peak as peak_lib
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule

# The reference CPU config: fmap_base 1024, fmap_max 128, latent 128, batch 32, 4..64.
REFERENCE = NetworkConfig(resolution=64, latent_size=128, fmap_base=1024, fmap_max=128)
REFERENCE_BATCH = 32


def _memory():
    """Peak resident set size of this process so far (bytes; phases run in order, so it accumulates),
    its current RSS, and TF's allocator peak where the device reports one."""
    info = {"rss_peak_bytes": None, "rss_bytes": psutil.Process().memory_info().rss, "tf_peak_bytes": None}
    try:
        import resource
        info["rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    except ImportError:
        pass
    try:
        info["tf_peak_bytes"] = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    except (ValueError, RuntimeError):
        pass  # the CPU allocator keeps no statistics; GPUs do
    return info


def _synthetic_data(strategy, batch, resolution, channels, seed=0):
    """An endless distributed iterator over one in-memory batch per replica (no input pipeline)."""
    per_replica = batch // strategy.num_replicas_in_sync

    def dataset_fn(ctx):
        shape = [per_replica, resolution, resolution, channels]
        images = tf.random.stateless_uniform(shape, [seed, ctx.input_pipeline_id], -1.0, 1.0)
        return tf.data.Dataset.from_tensors(images).repeat()

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def phase_runner(trainer, phase, python_loop=False):
    """The phase's compiled step, called as the training loop calls it, on synthetic in-memory images.

    Returns (run, steps_per_call): run(n_calls) makes n calls, waits for the last and returns its losses.
    `python_loop` uses the single-step function, called from Python once per step with the batch taken from the
    iterator in Python (the loop before steps_per_call), instead of the `config.steps_per_call`-step function.
    """
    models = trainer.build_phase(phase)
    k = 1 if python_loop else trainer.config.steps_per_call
    data = _synthetic_data(trainer.strategy, phase.batch_size, phase.resolution, trainer.network.num_channels)
    counter = {"step": 0}
    alpha = phase.alpha(phase.start)
    if not python_loop:
        run_steps = trainer.make_train_step(models, k)
        alphas, count = tf.fill([k], alpha), tf.constant(k, tf.int32)
        betas = tf.fill([k], trainer.config.ema_beta(phase.batch_size, phase.start))

        def call(first):  # as Trainer._loop calls it
            return run_steps(data, first, alphas, betas, count)
    else:
        step_fn = trainer.make_train_step(models)

        def call(first):
            return step_fn(next(data), first, tf.constant(alpha, tf.float32),
                           tf.constant(trainer.config.ema_beta(phase.batch_size, phase.start), tf.float32))

    def run(n_calls):
        for _ in range(n_calls):
            out = call(tf.constant(counter["step"], tf.int64))
            counter["step"] += k
        return [v.numpy() for v in out]  # waits for the last call

    return run, k


def benchmark_phase(trainer, phase, steps, warmup, repeats, budget_seconds, python_loop=False, window_seconds=2.0):
    """Time the trainer's step on one phase -> dict of timings and rates (arguments as in `run_benchmark`).

    A timed window runs at least `steps` steps and about `window_seconds`; `python_loop`: see `phase_runner`.
    """
    run, k = phase_runner(trainer, phase, python_loop)
    start = time.perf_counter()
    run(max(1, -(-warmup // k)))
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    run(1)
    calls = max(-(-steps // k), round(window_seconds / (time.perf_counter() - start)))
    timing = peak_lib.timed_windows(lambda: run(calls), repeats=repeats, budget_seconds=budget_seconds)
    steps_timed = calls * k
    cost = flops.stage_flops(trainer.network, phase.resolution, phase.fading, phase.batch_size, trainer.config.loss)
    step_seconds = timing["median"] / steps_timed
    return {"resolution": phase.resolution, "phase": phase.name, "batch": phase.batch_size,
            "steps_per_window": steps_timed, "steps_per_call": 0 if python_loop else k,
            "warmup_seconds": warmup_seconds,
            "ms_per_step": step_seconds * 1e3, "images_per_second": phase.batch_size / step_seconds,
            "flops_per_image": cost["per_image"], "flops_per_step": cost["iteration"],
            "gflops": cost["iteration"] / step_seconds / 1e9, "F_G": cost["F_G"], "F_D": cost["F_D"],
            "flops_per_step_nominal": cost["iteration_nominal"],
            "gflops_nominal": cost["iteration_nominal"] / step_seconds / 1e9,
            "memory": _memory(), **timing}


def run_benchmark(trainer, resolutions=None, fade=False, steps=20, warmup=5, repeats=5, budget_seconds=300.0,
                  peak=None, python_loop=False, print_fn=print):
    """Benchmark every resolution of a trainer's config (its stable phase, and its fade phase with `fade`).

    `trainer`'s data is not read; its `config.steps_per_call` is used. `resolutions` default to all of the schedule's.
    `steps`: steps per timed window, `warmup`: warm-up steps, `repeats`: quiet windows per phase, `budget_seconds`:
    how long to wait for a quiet machine per phase. `peak`: a `peak.measure()` result, or None to omit fractions of
    peak; `python_loop`: see `phase_runner`. Returns a dict with the configuration, the peak and one row per phase
    (the table goes to print_fn).
    """
    network, schedule, config = trainer.network, trainer.schedule, trainer.config
    print_fn(HEADER)
    rows = []
    for phase in schedule.phases():
        if (resolutions and phase.resolution not in resolutions) or (phase.fading and not fade):
            continue
        row = benchmark_phase(trainer, phase, steps, warmup, repeats, budget_seconds, python_loop)
        if peak:
            row["fraction_of_peak"] = row["gflops"] / peak["conv_peak_gflops"]
            row["fraction_of_peak_nominal"] = row["gflops_nominal"] / peak["conv_peak_gflops_nominal"]
        rows.append(row)
        print_fn(_row_line(row))
    quiet = all(r["quiet"] for r in rows)
    if not quiet:
        print_fn("NOT QUIET: the machine never stayed below 0.15 cores of other load within the budget; "
                 "these numbers are lower bounds taken on a busy machine.")
    return {"network": network.to_dict(), "train": {"loss": config.loss, "precision": config.precision,
                                                    "xla": config.xla,
                                                    "steps_per_call": 0 if python_loop else config.steps_per_call},
            "replicas": trainer.strategy.num_replicas_in_sync, "peak": peak, "rows": rows,
            "quiet": quiet, "tensorflow": tf.__version__, "cpus": psutil.cpu_count()}


HEADER = (f"{'res':>4} {'phase':<6} {'batch':>5} {'img/s':>9} {'ms/step':>9} {'spread':>7} {'GFLOP/img':>10} "
          f"{'GFLOP/s':>8} {'%peak':>6} {'%nom':>6} {'RSS MB':>7} {'others':>6} quiet")


def _row_line(r):
    frac = "".join(f"{r[key]:7.1%}" if key in r else f"{'-':>7}"
                   for key in ("fraction_of_peak", "fraction_of_peak_nominal"))
    return (f"{r['resolution']:>4} {r['phase']:<6} {r['batch']:>5} {r['images_per_second']:9.1f} "
            f"{r['ms_per_step']:9.2f} {r['spread']:7.1%} {r['flops_per_image'] / 1e9:10.3f} {r['gflops']:8.1f}"
            f"{frac} {(r['memory']['rss_peak_bytes'] or 0) / 2 ** 20:7.0f} {max(r['other_cores']):6.2f} "
            f"{'yes' if r['quiet'] else 'NO'}")


def reference_options(batch=REFERENCE_BATCH, paper=False, max_resolution=64):
    """(network, schedule) of the reference CPU config (grown on to `max_resolution` if asked),
    or of the paper's 1024x1024 networks."""
    if paper:
        return NetworkConfig(), Schedule()
    network = dataclasses.replace(REFERENCE, resolution=max_resolution)
    schedule = Schedule(max_resolution=max_resolution, batch_sizes={r: batch for r in network.resolutions},
                        total_kimg=None)
    return network, schedule
