"""progan-prepare: turn images into a multi-resolution TFRecord dataset for progan-train.

  progan-prepare --source=synthetic --name=synthetic --num_images=8192
  progan-prepare --source=path/to/photos --name=photos --max_resolution=256 --crop=center
  progan-prepare --source=tfds:celeb_a_hq/1024 --tfds_manual_dir=~/celeba_hq --name=celeba_hq
  progan-prepare --flagfile=datasets/cifar10.flags
  progan-prepare --source=emoji:train --name=emoji --max_resolution=64

Writes datasets/<name>/ (or --out_dir): one sharded TFRecord set per resolution,
4x4 to --max_resolution, and manifest.json. See datasets/README.md for every recipe.
"""
import json
import os
import signal
import sys

from absl import app, flags, logging

from progan_tf.cli.common import UsageError, fail

PROGRAM = "progan-prepare"
SOURCE_FORMS = ("a folder, tfds:NAME[/CONFIG][:SPLIT], mnist:DIR[:SPLIT], cifar10:DIR[:SPLIT], "
                "emoji[:FONT][:all|train|test] or synthetic")

flags.DEFINE_string("source", "", f"Images to prepare: {SOURCE_FORMS}.")
flags.DEFINE_string("name", "", "Dataset name: writes datasets/<name>/.")
flags.DEFINE_string("out_dir", "", "Write here instead of datasets/<name>/.")
flags.DEFINE_integer("max_resolution", 0, "Top resolution, a power of two >= 4 (0 = the largest the images reach).")
flags.DEFINE_string("crop", "center", "Make images square: center (crop) or pad (black borders).")
flags.DEFINE_boolean("allow_upscale", False, "Enlarge images smaller than --max_resolution (else they are skipped).")
flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset.")
flags.DEFINE_integer("num_images", 0, "Use the first N images (0 = all); the count for synthetic (0 = 4096) "
                     "and --mnist_rgb (0 = 1,000,000).")
flags.DEFINE_integer("shards", 0, "TFRecord files per resolution (0 = automatic, about 256 MB each).")
flags.DEFINE_integer("images_per_shard", 0, "Images per TFRecord file (instead of --shards).")
flags.DEFINE_boolean("mnist_rgb", False, "The paper's MNIST-RGB: three random digits as R, G, B (mnist: only).")
flags.DEFINE_boolean("keep_labels", False, "Store labels (class folder, digit, tfds label) for conditional training.")
flags.DEFINE_boolean("shuffle", True, "Store the images in a seeded random order (not for tfds: sources).")
flags.DEFINE_integer("seed", 0, "Seed of the stored order, synthetic images and MNIST-RGB digit picks.")
flags.DEFINE_string("tfds_data_dir", "", "tfds data_dir holding the prepared tfds dataset.")
flags.DEFINE_string("tfds_manual_dir", "", "tfds manual_dir with a manual download (e.g. celeb_a_hq).")
flags.DEFINE_integer("workers", 0, "Encoding processes (0 = one per CPU core).")
flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")
flags.DEFINE_boolean("dry_run", False, "Check the source, print the plan as JSON and exit.")
FLAGS = flags.FLAGS


def options_from_flags(f):
    """Validate the flags; returns the output directory.

    Raises:
      UsageError: a one-line message naming the bad flag.
    """
    from progan_tf.data.tfrecord import is_power_of_two

    if not f.source:
        raise UsageError(f"--source is required: {SOURCE_FORMS}")
    if bool(f.name) == bool(f.out_dir):
        raise UsageError("give exactly one of --name (writes datasets/<name>) or --out_dir")
    if f.name and (os.sep in f.name or f.name.startswith(".")):
        raise UsageError(f"--name={f.name!r} must be a plain directory name; use --out_dir for a path")
    if f.max_resolution and (f.max_resolution < 4 or not is_power_of_two(f.max_resolution)):
        raise UsageError(f"--max_resolution={f.max_resolution} is not a power of two >= 4 (try 32, 256 or 1024)")
    for name in ("num_images", "shards", "images_per_shard", "workers"):
        if getattr(f, name) < 0:
            raise UsageError(f"--{name} must be >= 0, got {getattr(f, name)}")
    if f.crop not in ("center", "pad"):
        raise UsageError(f"--crop={f.crop!r} is unknown; choose center or pad")
    if f.shards and f.images_per_shard:
        raise UsageError("give --shards or --images_per_shard, not both")
    if f.mnist_rgb and not f.source.startswith("mnist:"):
        raise UsageError(f"--mnist_rgb needs an mnist:DIR source, not --source={f.source}")
    if (f.tfds_data_dir or f.tfds_manual_dir) and not f.source.startswith("tfds:"):
        raise UsageError("--tfds_data_dir and --tfds_manual_dir apply to tfds: sources only")
    return f.out_dir or os.path.join("datasets", f.name)


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments {argv[1:]}; every option is a --flag")
    # SIGTERM unwinds like Ctrl-C, so the partial directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    from progan_tf.data import sources, tfrecord
    try:
        out_dir = options_from_flags(FLAGS)
        if not FLAGS.dry_run:
            tfrecord.check_target(out_dir, FLAGS.overwrite)
        source = sources.open_image_source(
            FLAGS.source, mnist_rgb=FLAGS.mnist_rgb, count=FLAGS.num_images, seed=FLAGS.seed,
            resolution=FLAGS.max_resolution or 64, tfds_data_dir=FLAGS.tfds_data_dir or None,
            tfds_manual_dir=FLAGS.tfds_manual_dir or None)
        options = dict(max_resolution=FLAGS.max_resolution, crop=FLAGS.crop, allow_upscale=FLAGS.allow_upscale,
                       num_images=FLAGS.num_images, shards=FLAGS.shards, images_per_shard=FLAGS.images_per_shard)
        if FLAGS.dry_run:
            plan = tfrecord.plan_dataset(source, **options)
            print(json.dumps({"out_dir": out_dir, **plan, "shards": {str(k): v for k, v in plan["shards"].items()}},
                             indent=1))
            return
        manifest = tfrecord.prepare_dataset(
            source, out_dir, overwrite=FLAGS.overwrite, keep_labels=FLAGS.keep_labels, shuffle=FLAGS.shuffle,
            seed=FLAGS.seed, workers=FLAGS.workers, progress=FLAGS.progress, **options)
    except (UsageError, ValueError, FileExistsError) as e:  # SourceError is a ValueError
        fail(PROGRAM, str(e))
    r = manifest["max_resolution"]
    print(f"prepared {manifest['num_images']} images at 4x4..{r}x{r}x{manifest['num_channels']} in {out_dir}: "
          f"{manifest['images_per_second']:.1f} images/s, {manifest['num_skipped']} skipped, "
          f"{manifest['bytes'] / 2**20:.1f} MiB written in {manifest['seconds']:.1f} s")


def parse_flags(argv):
    """absl's parser, but a bad flag is one line and exit code 2 like every other misuse."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(PROGRAM, str(e))


def run():
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
