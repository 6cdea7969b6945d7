"""progan-train: train a progressive GAN.

  progan-train --flagfile=configs/demo.flags
  progan-train --data_dir=datasets/celeba_hq --flagfile=configs/celeba_hq_1024.flags

Re-running the same command resumes from the run's newest checkpoint.
"""
import dataclasses
import json
import os

from absl import flags, logging

from progan_tf.cli.common import UsageError, fail, parse_int_map, run_app, split_cpu

PROGRAM = "progan-train"

# Run and data.
flags.DEFINE_string("run_dir", "runs/progan", "Run directory: checkpoints, samples, logs, final export.")
flags.DEFINE_string("data_dir", "", "Prepared dataset (progan-prepare); empty = the embedded synthetic shapes.")
flags.DEFINE_integer("synthetic_images", 4096, "Number of embedded synthetic images when --data_dir is empty.")
flags.DEFINE_boolean("mirror", False, "Random left-right flips of the training images.")
flags.DEFINE_integer("seed", 0, "Seed of latents, penalty interpolation and data order.")
# Network (paper defaults for 1024x1024).
flags.DEFINE_integer("resolution", 1024, "Final resolution, a power of two >= 4.")
flags.DEFINE_integer("num_channels", 3, "Image channels.")
flags.DEFINE_integer("latent_size", 512, "Size of the latent vector z.")
flags.DEFINE_integer("fmap_base", 8192, "Feature maps: nf(stage) = min(fmap_base / 2**(stage*fmap_decay), fmap_max).")
flags.DEFINE_float("fmap_decay", 1.0, "Feature-map decay per stage (log2).")
flags.DEFINE_integer("fmap_max", 512, "Maximum feature maps per layer.")
flags.DEFINE_integer("mbstd_group_size", 4, "Minibatch-stddev group size (0 disables it).")
flags.DEFINE_boolean("nowscale", False, "Ablation: no equalised learning rate (He-initialised weights, no "
                     "run-time scale).")
flags.DEFINE_boolean("nopixelnorm", False, "Ablation: no pixel norm after the generator's layers.")
flags.DEFINE_boolean("nombstd", False, "Ablation: no minibatch-stddev layer (the same as --mbstd_group_size=0).")
flags.DEFINE_integer("fused_upsample", 16, "G's blocks from this resolution up run upsample + conv as one "
                     "transposed conv (same function, fewer FLOPs); 0 = never. Runs started before this flag "
                     "existed resume with --fused_upsample=0.")
# Schedule.
flags.DEFINE_float("fade_kimg", 600, "Thousands of images per fade-in phase.")
flags.DEFINE_float("stable_kimg", 600, "Thousands of images per stable phase.")
flags.DEFINE_boolean("nogrowing", False, "Ablation: train at --resolution from the start, with the same image "
                     "budget as the progressive schedule.")
flags.DEFINE_float("total_kimg", 12000, "Thousands of images in all; the last stable phase takes the rest. "
                   "0 = every phase its normal length.")
flags.DEFINE_string("batch_sizes", "4:128,8:128,16:128,32:64,64:32,128:16,256:8,512:4,1024:4",
                    "Global minibatch per resolution, 'res:batch,...'.")
flags.DEFINE_integer("default_batch", 16, "Minibatch for resolutions not in --batch_sizes.")
flags.DEFINE_float("learning_rate", 0.001, "Adam learning rate.")
flags.DEFINE_string("learning_rates", "1024:0.0015", "Per-resolution learning rates, 'res:lr,...'.")
# Loss and optimiser.
flags.DEFINE_string("loss", "wgan_gp", "wgan_gp | lsgan | logistic.")
flags.DEFINE_float("gp_lambda", 10.0, "WGAN-GP gradient-penalty weight.")
flags.DEFINE_float("drift", 0.001, "WGAN-GP drift weight on D(real)^2.")
flags.DEFINE_float("r1_gamma", 10.0, "R1 penalty weight for --loss=logistic.")
flags.DEFINE_float("adam_beta1", 0.0, "Adam beta1.")
flags.DEFINE_float("adam_beta2", 0.99, "Adam beta2.")
flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.")
flags.DEFINE_float("g_ema_beta", 0.999, "Decay of the generator moving average Gs per step.")
flags.DEFINE_float("g_ema_kimg", 0, "If > 0: half-life of Gs in kimg instead of --g_ema_beta "
                   "(beta = 0.5 ** (batch / (1000 * g_ema_kimg))).")
flags.DEFINE_float("g_ema_rampup", 0, "With --g_ema_kimg: half-life at most this times the images seen (0 = off; "
                   "StyleGAN2 uses 0.05).")
flags.DEFINE_boolean("noema", False, "Ablation: no generator average; samples, metrics and exports use G.")
# Devices and speed.
flags.DEFINE_list("devices", [], "Devices for MirroredStrategy, e.g. GPU:0,GPU:1 (default: all GPUs, or the CPU).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to try multi-device runs).")
flags.DEFINE_string("precision", "float32", "float32 | mixed_float16 | mixed_bfloat16.")
flags.DEFINE_boolean("xla", False, "XLA-compile the step (single device only).")
flags.DEFINE_integer("steps_per_call", 8, "Training steps per call of the compiled step (>= 1); results do not "
                     "depend on it.")
flags.DEFINE_boolean("deterministic", False, "Bit-exact reruns and resumes: TensorFlow op determinism and one "
                     "op at a time (about 20 % slower).")
# Output.
flags.DEFINE_float("tick_kimg", 160, "Thousands of images between progress lines and sample grids.")
flags.DEFINE_float("checkpoint_kimg", 1000, "Thousands of images between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept on disk (at least 2).")
flags.DEFINE_integer("grid_size", 64, "Fixed-latent samples per grid.")
flags.DEFINE_float("stop_at_kimg", 0, "Stop with a checkpoint once this many kimg are reached (0 = train to the "
                   "end); run again without it to continue, e.g. under a job time limit.")
flags.DEFINE_list("metrics", [], "Metrics of Gs evaluated during training: swd, msssim.")
flags.DEFINE_float("metrics_every_kimg", 0, "Thousands of images between evaluations (0 = never).")
flags.DEFINE_integer("metrics_num_images", 10000, "Images per evaluation (the paper: 16384).")
flags.DEFINE_boolean("dry_run", False, "Validate the options, print them as JSON and exit.")
flags.DEFINE_boolean("benchmark", False, "Time the training step of each resolution's stable phase on synthetic "
                     "in-memory images (no input pipeline, nothing written to --run_dir) and exit: images/s, "
                     "ms/step, FLOP/s, memory.")
flags.DEFINE_list("benchmark_resolutions", [], "Resolutions to time with --benchmark (default: all).")
flags.DEFINE_integer("benchmark_steps", 20, "Steps per timed window with --benchmark.")
flags.DEFINE_integer("benchmark_repeats", 3, "Timed windows per resolution with --benchmark (median reported).")
flags.DEFINE_boolean("benchmark_peak", False, "With --benchmark, first measure this machine's conv peak and "
                     "report each rate as a fraction of it (about a minute).")
flags.DEFINE_float("benchmark_wait", 60, "With --benchmark, seconds to wait per resolution for a quiet machine "
                   "(other processes below 0.15 cores) before timing anyway.")
flags.DEFINE_string("benchmark_json", "", "With --benchmark, also write the results here as JSON.")

FLAGS = flags.FLAGS


def options_from_flags(f):
    """Turn flags into (NetworkConfig, Schedule, TrainConfig), validating every value.

    Raises:
      UsageError: a one-line message naming the bad flag.
    """
    from progan_tf.networks import NetworkConfig, is_power_of_two
    from progan_tf.schedule import Schedule
    from progan_tf.training.trainer import TrainConfig

    if not is_power_of_two(f.resolution) or f.resolution < 4:
        raise UsageError(f"--resolution={f.resolution} is not a power of two >= 4 (try 32, 256 or 1024)")
    batch_sizes = parse_int_map("batch_sizes", f.batch_sizes)
    bad = [r for r in batch_sizes if not is_power_of_two(r) or r < 4]
    if bad:
        raise UsageError(f"--batch_sizes names resolutions {bad} that are not powers of two >= 4")
    if any(b < 1 for b in batch_sizes.values()):
        raise UsageError(f"--batch_sizes must be positive, got {f.batch_sizes!r}")
    if f.stop_at_kimg < 0:
        raise UsageError(f"--stop_at_kimg must be >= 0, got {f.stop_at_kimg}")
    for name in ("fade_kimg", "stable_kimg", "tick_kimg", "checkpoint_kimg", "learning_rate"):
        if getattr(f, name) <= 0:
            raise UsageError(f"--{name} must be positive, got {getattr(f, name)}")
    if f.cpu_devices < 0 or f.synthetic_images < 1 or f.grid_size < 1:
        raise UsageError("--cpu_devices must be >= 0, --synthetic_images and --grid_size >= 1")
    if f.noema and (f.g_ema_kimg or f["g_ema_beta"].present):
        raise UsageError("--noema turns the generator average off; drop --g_ema_beta / --g_ema_kimg")
    if f.nombstd and f["mbstd_group_size"].present and f.mbstd_group_size:
        raise UsageError("--nombstd contradicts --mbstd_group_size; give one of them")
    if f.data_dir and not os.path.isdir(f.data_dir):
        raise UsageError(f"--data_dir={f.data_dir} does not exist; prepare it with progan-prepare")
    try:
        network = NetworkConfig(resolution=f.resolution, num_channels=f.num_channels, latent_size=f.latent_size,
                                fmap_base=f.fmap_base, fmap_decay=f.fmap_decay, fmap_max=f.fmap_max,
                                mbstd_group_size=0 if f.nombstd else f.mbstd_group_size,
                                use_pixelnorm=not f.nopixelnorm, use_wscale=not f.nowscale,
                                fused_upsample=f.fused_upsample)
        schedule = Schedule(max_resolution=f.resolution, fade_kimg=f.fade_kimg, stable_kimg=f.stable_kimg,
                            total_kimg=f.total_kimg or None, batch_sizes=batch_sizes,
                            learning_rates=parse_int_map("learning_rates", f.learning_rates, float),
                            default_batch=f.default_batch, base_lr=f.learning_rate)
        schedule.phases()  # checks total_kimg against the phases
        if f.nogrowing:
            schedule = schedule.without_growing()
        train = TrainConfig(run_dir=f.run_dir, loss=f.loss, gp_lambda=f.gp_lambda, drift=f.drift,
                            r1_gamma=f.r1_gamma, adam_beta1=f.adam_beta1, adam_beta2=f.adam_beta2,
                            adam_epsilon=f.adam_epsilon, g_ema_beta=0.0 if f.noema else f.g_ema_beta,
                            g_ema_kimg=f.g_ema_kimg, g_ema_rampup=f.g_ema_rampup, mirror=f.mirror, seed=f.seed,
                            tick_kimg=f.tick_kimg, checkpoint_kimg=f.checkpoint_kimg,
                            keep_checkpoints=f.keep_checkpoints, precision=f.precision, jit_compile=f.xla,
                            steps_per_call=f.steps_per_call, grid_size=f.grid_size, metrics=tuple(f.metrics),
                            metrics_every_kimg=f.metrics_every_kimg, metrics_num_images=f.metrics_num_images)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return network, schedule, train


def make_source(f, network):
    """The training images: a prepared dataset or the embedded synthetic set."""
    if f.data_dir:
        from progan_tf.data.pipeline import open_source
        return open_source(f.data_dir, num_channels=network.num_channels, max_resolution=network.resolution)
    from progan_tf.data.pipeline import ArraySource
    from progan_tf.data.synthetic import synthetic_images
    print(f"generating {f.synthetic_images} embedded synthetic images at {network.resolution}x{network.resolution}")
    return ArraySource(synthetic_images(f.synthetic_images, network.resolution, seed=f.seed)[0], name="synthetic")


def _benchmark_resolutions(f, schedule):
    known = sorted({p.resolution for p in schedule.phases()})
    try:
        wanted = [int(r) for r in f.benchmark_resolutions]
    except ValueError:
        raise UsageError(f"--benchmark_resolutions must be integers, got {f.benchmark_resolutions}") from None
    if [r for r in wanted if r not in known]:
        raise UsageError(f"--benchmark_resolutions {wanted} must be among this run's resolutions {known}")
    if f.benchmark_steps < 1 or f.benchmark_repeats < 1 or f.benchmark_wait < 0:
        raise UsageError("--benchmark_steps and --benchmark_repeats must be >= 1, --benchmark_wait >= 0")
    return wanted


def benchmark(f, network, schedule, train, strategy, resolutions):
    """--benchmark: time each stable phase's step and print the table (and JSON)."""
    import shutil
    import tempfile

    from progan_tf.benchmark import peak as peak_lib
    from progan_tf.benchmark import throughput

    peak = None
    if f.benchmark_peak:
        print("measuring this machine's peak ...")
        peak = peak_lib.measure(repeats=3, budget_seconds=f.benchmark_wait)
        peak_lib.print_table(peak)
    scratch = tempfile.mkdtemp(prefix="progan_benchmark_")
    try:
        result = throughput.run_benchmark(network, schedule, dataclasses.replace(train, run_dir=scratch),
                                          resolutions, steps=f.benchmark_steps, repeats=f.benchmark_repeats,
                                          budget_seconds=f.benchmark_wait, peak=peak, strategy=strategy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    peak_lib.write_json(f.benchmark_json, result)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments {argv[1:]}; every option is a --flag")
    try:
        network, schedule, train = options_from_flags(FLAGS)
        if FLAGS.cpu_devices:
            split_cpu(FLAGS.cpu_devices)
        import keras
        from progan_tf.training import trainer
        if FLAGS.deterministic:
            trainer.make_deterministic()
        strategy = trainer.make_strategy(FLAGS.devices)
        trainer.validate(network, schedule, train, strategy.num_replicas_in_sync)
        if FLAGS.benchmark:
            resolutions = _benchmark_resolutions(FLAGS, schedule)
        if FLAGS.dry_run:
            print(json.dumps({"network": network.to_dict(), "schedule": dataclasses.asdict(schedule),
                              "train": dataclasses.asdict(train),
                              "replicas": strategy.num_replicas_in_sync}, indent=2))
            return
        if train.precision != "float32":
            keras.mixed_precision.set_dtype_policy(train.precision)
        if FLAGS.benchmark:
            return benchmark(FLAGS, network, schedule, train, strategy, resolutions)
        source = make_source(FLAGS, network)
        run = trainer.Trainer(network, schedule, train, source, strategy)
    except (UsageError, ValueError) as e:
        fail(PROGRAM, str(e))
    state = run.train(stop_at_images=int(FLAGS.stop_at_kimg * 1000) or None)
    print(f"done: {state['images_seen'] / 1000:.1f} kimg at {state['resolution']}x{state['resolution']}; "
          f"samples in {os.path.join(train.run_dir, 'samples')}")


def run():
    run_app(PROGRAM, main)


if __name__ == "__main__":
    run()
