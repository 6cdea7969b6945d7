"""progan-eval: score a generator with the paper's metrics (SWD, MS-SSIM) and FID.

  progan-eval --model=runs/celeba --data_dir=datasets/celeba_hq --metrics=swd,msssim --num_images=16384
  progan-eval --model=export/models/celeba --data_dir=datasets/celeba_hq --metrics=swd,fid \\
      --inception_weights=inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 --out=result.json

--model is a run directory (its newest checkpoint's Gs), an export version
directory, or an export base (its newest version). Real-image statistics are
cached in <data_dir>/metrics_cache, per resolution, image count and seed.
"""
import json
import os

from absl import flags, logging

from progan_tf.cli.common import UsageError, fail, run_app

PROGRAM = "progan-eval"

flags.DEFINE_string("model", "", "Run directory, export version directory, or export base directory.")
flags.DEFINE_string("data_dir", "", "Prepared dataset (progan-prepare); empty = the embedded synthetic shapes.")
flags.DEFINE_integer("synthetic_images", 4096, "Embedded synthetic images when --data_dir is empty.")
flags.DEFINE_integer("data_seed", 0, "Seed of the embedded synthetic set (progan-train's --seed).")
flags.DEFINE_list("metrics", ["swd", "msssim"], "Metrics: swd, msssim, fid.")
flags.DEFINE_integer("num_images", 16384, "Images per side (the paper: 16384); capped at the dataset size.")
flags.DEFINE_integer("resolution", 0, "Evaluate a run at this lower resolution (0 = the checkpoint's).")
flags.DEFINE_integer("batch_size", 64, "Images per generator call.")
flags.DEFINE_integer("seed", 0, "Seed of latents, SWD neighbourhoods and MS-SSIM pairs.")
flags.DEFINE_string("inception_weights", "", "Local Keras InceptionV3 'notop' h5 weights (needed for fid).")
flags.DEFINE_string("cache_dir", "", "Where real statistics are cached (default <data_dir>/metrics_cache; "
                    "none for the synthetic set).")
flags.DEFINE_string("out", "", "Write the result as JSON here (default: print it).")
FLAGS = flags.FLAGS


def options_from_flags(f):
    """Validate the flags; returns the metric tuple.

    Raises:
      UsageError: a one-line message naming the bad flag.
    """
    from progan_tf.metrics import evaluate, fid

    if not f.model or not os.path.exists(f.model):
        raise UsageError(f"--model={f.model!r} does not exist; give a run directory or an export directory")
    if f.data_dir and not os.path.isdir(f.data_dir):
        raise UsageError(f"--data_dir={f.data_dir} does not exist; prepare it with progan-prepare")
    try:
        metrics = evaluate.validate_metrics(f.metrics)
    except ValueError as e:
        raise UsageError(f"--metrics: {e}") from None
    if "fid" in metrics:
        try:
            fid.check_inception_weights(f.inception_weights)
        except FileNotFoundError as e:
            raise UsageError(f"--inception_weights: {e}") from None
    for name in ("num_images", "batch_size", "synthetic_images"):
        if getattr(f, name) < 2:
            raise UsageError(f"--{name} must be at least 2, got {getattr(f, name)}")
    if f.resolution < 0:
        raise UsageError(f"--resolution must be >= 0, got {f.resolution}")
    return metrics


def load_sampler(model, resolution):
    """The generator behind --model as an `export.Sampler` (images in [0, 1])."""
    from progan_tf.export import Sampler, find_export
    from progan_tf.training.checkpoint import read_state

    if read_state(model) is not None:
        return Sampler.from_run(model, resolution or None)
    export_dir = find_export(model)
    if export_dir is None:
        raise UsageError(f"--model={model} holds neither a run checkpoint nor an exported SavedModel")
    if resolution:
        raise UsageError("--resolution applies to run directories only; an export has one resolution")
    return Sampler.from_export(export_dir)


def open_reals(f, resolution):
    """(image source, cache directory or None) for the real images."""
    from progan_tf.data.pipeline import ArraySource

    if f.data_dir:
        from progan_tf.data.pipeline import open_source
        return (open_source(f.data_dir, max_resolution=resolution),
                f.cache_dir or os.path.join(f.data_dir, "metrics_cache"))
    from progan_tf.data.synthetic import synthetic_images
    images = synthetic_images(f.synthetic_images, resolution, seed=f.data_seed)[0]
    return ArraySource(images, name="synthetic"), f.cache_dir or None


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments {argv[1:]}; every option is a --flag")
    from progan_tf.metrics import evaluate, fid
    try:
        metrics = options_from_flags(FLAGS)
        sampler = load_sampler(FLAGS.model, FLAGS.resolution)
        source, cache_dir = open_reals(FLAGS, sampler.resolution)
        num_images = min(FLAGS.num_images, source.num_images)
        if num_images < FLAGS.num_images:
            print(f"note: the dataset has {source.num_images} images; evaluating {num_images} a side")
        feature_fn = fid.inception_feature_extractor(FLAGS.inception_weights) if "fid" in metrics else None
        result = evaluate.evaluate_generator(
            lambda z: sampler.images_fn(z) * 2.0 - 1.0,  # the sampler gives [0, 1]
            evaluate.real_batches(source, sampler.resolution, FLAGS.batch_size, FLAGS.seed), metrics, num_images,
            sampler.resolution, sampler.latent_size, num_channels=source.num_channels,
            batch_size=FLAGS.batch_size, seed=FLAGS.seed, cache_dir=cache_dir, feature_fn=feature_fn)
    except (UsageError, ValueError, FileNotFoundError) as e:
        fail(PROGRAM, str(e))
    result = {"model": FLAGS.model, "data": FLAGS.data_dir or "synthetic", **result}
    print(evaluate.format_table(result))
    if FLAGS.out:
        with open(FLAGS.out, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
        print(f"wrote {FLAGS.out}")
    else:
        print(json.dumps(result))


def run():
    run_app(PROGRAM, main)


if __name__ == "__main__":
    run()
