"""What progan-train does around the Trainer: devices, determinism, precision, the data, the run."""
import dataclasses
import json
import os

import keras
import tensorflow as tf

from progan_tf.errors import ConfigError
from progan_tf.training import distribute
from progan_tf.training import trainer as trainer_lib
from progan_tf.training.config import validate


def split_cpu(count):
    """Split the CPU into `count` logical devices (before TensorFlow initialises its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def _device_name(name):
    """'gpu:0', '/GPU:0', '/device:GPU:0' -> 'GPU:0'."""
    kind, _, index = name.split("device:")[-1].strip("/").partition(":")
    return f"{kind.upper()}:{index or 0}"


def check_devices(devices):
    """Every device named must exist here, else ConfigError: a missing GPU must not silently become the CPU."""
    present = [_device_name(d.name) for d in tf.config.list_logical_devices()]
    missing = [d for d in devices if _device_name(d) not in present]
    if missing:
        raise ConfigError("{devices}: no {missing} on this machine; its devices are {present}",
                          missing=", ".join(missing), present=", ".join(present))


def open_training_data(network, data_dir="", synthetic_images=4096, seed=0, print_fn=print):
    """The training images: a prepared dataset, or the embedded synthetic shapes when `data_dir` is empty."""
    if data_dir:
        from progan_tf.data.pipeline import open_dataset
        return open_dataset(data_dir, num_channels=network.num_channels, max_resolution=network.resolution)
    from progan_tf.data.pipeline import ArrayDataset
    from progan_tf.data.synthetic import synthetic_images as make_images
    print_fn(f"generating {synthetic_images} embedded synthetic images at {network.resolution}x{network.resolution}")
    return ArrayDataset(make_images(synthetic_images, network.resolution, seed=seed)[0], name="synthetic")


def run(network, schedule, config, data_dir="", synthetic_images=4096, devices=(), cpu_devices=0,
        deterministic=False, stop_at_kimg=0, dry_run=False, print_fn=print):
    """Train (or resume) the run `config.run_dir` describes, as progan-train does.

    Returns the final run state, or None for a dry run. `data_dir`: a prepared dataset; empty for the embedded synthetic
    shapes (`synthetic_images` of them). `devices`: for MirroredStrategy (default: every GPU, or the CPU).
    `cpu_devices`: split the CPU into this many logical devices first (to try multi-device runs). `deterministic`:
    bit-exact reruns and resumes (`distribute.make_deterministic`). `stop_at_kimg`: stop with a checkpoint at this many
    kimg (0: train to the end). `dry_run`: validate and print the resolved options as JSON, and train nothing.
    """
    if cpu_devices:
        split_cpu(cpu_devices)
    if deterministic:
        distribute.make_deterministic()
    # MultiWorkerMirroredStrategy must exist before anything initialises TensorFlow's context.
    strategy = distribute.make_strategy(list(devices))
    check_devices(devices)
    validate(network, schedule, config, strategy.num_replicas_in_sync)
    if dry_run:
        print_fn(json.dumps({"network": network.to_dict(), "schedule": dataclasses.asdict(schedule),
                             "train": dataclasses.asdict(config), "replicas": strategy.num_replicas_in_sync},
                            indent=2))
        return None
    if config.precision != "float32":
        keras.mixed_precision.set_dtype_policy(config.precision)
    dataset = open_training_data(network, data_dir, synthetic_images, config.seed, print_fn)
    run = trainer_lib.Trainer(network, schedule, config, dataset, strategy, print_fn=print_fn)
    state = run.train(stop_at_images=round(stop_at_kimg * 1000) or None)
    if not run.stop_requested:
        print_fn(f"done: {state['images_seen'] / 1000:.1f} kimg at {state['resolution']}x{state['resolution']}; "
                 f"samples in {os.path.join(config.run_dir, 'samples')}")
    return state


def bench(network, schedule, config, resolutions=(), reference=0, fades=False, steps=20, warmup=5, repeats=3,
          wait=60.0, python_loop=False, peak=False, peak_json="", peak_only=False, json_path="", devices=(),
          cpu_devices=0, print_fn=print):
    """What progan-bench does: time the trainer's step per resolution (progan_tf.bench.throughput); returns the result.

    The run_dir of `config` is not touched. `resolutions`: those to time (empty: all). `reference` > 0: time the
    reference CPU config up to this resolution instead. `fades`, `steps`, `warmup`, `repeats`, `python_loop`: see
    `throughput.run_benchmark`. `wait`: seconds to wait per phase for a quiet machine. `peak`: measure this machine's
    peak first; `peak_json` reuses one measured before; `peak_only`: only measure (and print, and save) the peak.
    `json_path`: where to write the result as JSON ("" = nowhere). `devices`, `cpu_devices`: as for `run`.
    """
    import tempfile

    from progan_tf.bench import peak as peak_lib
    from progan_tf.bench import throughput
    if cpu_devices:
        split_cpu(cpu_devices)
    check_devices(devices)
    measured = None
    if peak_json:
        measured = peak_lib.read_peak(peak_json)
    elif peak or peak_only:
        print_fn("measuring this machine's peak ...")
        measured = peak_lib.measure(repeats=3, budget_seconds=wait)
    if measured:
        peak_lib.print_table(measured, print_fn)
    if peak_only:
        peak_lib.write_json(json_path, measured)
        return measured
    if reference:
        network, schedule = throughput.reference_options(max_resolution=reference)
    known = sorted({p.resolution for p in schedule.phases()})
    if [r for r in resolutions if r not in known]:
        raise ConfigError("{bench_resolutions}={asked} must be among the configuration's resolutions {known}",
                          asked=list(resolutions), known=known)
    with tempfile.TemporaryDirectory(prefix="progan_bench_") as scratch:
        trainer = trainer_lib.Trainer(network, schedule, dataclasses.replace(config, run_dir=scratch), None,
                                      distribute.make_strategy(list(devices)), print_fn=lambda *_: None)
        result = throughput.run_benchmark(trainer, list(resolutions), fades, steps, warmup, repeats, wait,
                                          measured, python_loop, print_fn)
    peak_lib.write_json(json_path, result)
    return result
