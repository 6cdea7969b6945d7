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

from progan_tf.cli import common

PROGRAM = "progan-prepare"
_GROUP = "Prepare"
SOURCE_FORMS = ("a folder, tfds:NAME[/CONFIG][:SPLIT], mnist:DIR[:SPLIT], cifar10:DIR[:SPLIT], "
                "emoji[:FONT][:all|train|test] or synthetic")

common.define(_GROUP, "string", "source", "", f"Images to prepare: {SOURCE_FORMS}.")
common.define(_GROUP, "string", "name", "", "Dataset name: writes datasets/<name>/.")
common.define(_GROUP, "string", "out_dir", "", "Write here instead of datasets/<name>/.")
common.define(_GROUP, "integer", "max_resolution", 0,
              "Top resolution, a power of two >= 4 (0 = the largest the images reach).")
common.define(_GROUP, "string", "crop", "center", "Make images square: center (crop) or pad (black borders).")
common.define(_GROUP, "boolean", "allow_upscale", False,
              "Enlarge images smaller than --max_resolution (else they are skipped).")
common.define(_GROUP, "boolean", "overwrite", False, "Replace an existing dataset.")
common.define(_GROUP, "integer", "num_images", 0,
              "Use the first N images (0 = all); the count for synthetic (0 = 4096) and --mnist_rgb (0 = 1,000,000).")
common.define(_GROUP, "integer", "shards", 0, "TFRecord files per resolution (0 = automatic, about 256 MB each).")
common.define(_GROUP, "integer", "images_per_shard", 0, "Images per TFRecord file (instead of --shards).")
common.define(_GROUP, "boolean", "mnist_rgb", False,
              "The paper's MNIST-RGB: three random digits as R, G, B (mnist: only).")
common.define(_GROUP, "boolean", "keep_labels", False,
              "Store labels (class folder, digit, tfds label) for conditional training.")
common.define(_GROUP, "boolean", "shuffle", True, "Store the images in a seeded random order (not for tfds: sources).")
common.define(_GROUP, "integer", "seed", 0, "Seed of the stored order, synthetic images and MNIST-RGB digit picks.")
common.define(_GROUP, "string", "tfds_data_dir", "", "tfds data_dir holding the prepared tfds dataset.")
common.define(_GROUP, "string", "tfds_manual_dir", "", "tfds manual_dir with a manual download (e.g. celeb_a_hq).")
common.define(_GROUP, "integer", "workers", 0, "Encoding processes (0 = one per CPU core).")
common.define(_GROUP, "boolean", "progress", True, "Show a progress bar on stderr.")
common.define(_GROUP, "boolean", "dry_run", False, "Check the source, print the plan as JSON and exit.")


def options_from_flags(f):
    """Validate the flags (UsageError names a bad one); returns the output directory."""
    from progan_tf.resolutions import is_resolution

    if not f.source:
        raise common.UsageError(f"--source is required: {SOURCE_FORMS}")
    if bool(f.name) == bool(f.out_dir):
        raise common.UsageError("give exactly one of --name (writes datasets/<name>) or --out_dir")
    if f.name and (os.sep in f.name or f.name.startswith(".")):
        raise common.UsageError(f"--name={f.name!r} must be a plain directory name; use --out_dir for a path")
    if f.max_resolution and not is_resolution(f.max_resolution):
        raise common.UsageError(f"--max_resolution={f.max_resolution} is not a power of two >= 4 (try 32, 256 or "
                                f"1024)")
    common.check_at_least(f, 0, "num_images", "shards", "images_per_shard", "workers", "seed")
    if f.crop not in ("center", "pad"):
        raise common.UsageError(f"--crop={f.crop!r} is unknown; choose center or pad")
    if f.shards and f.images_per_shard:
        raise common.UsageError("give --shards or --images_per_shard, not both")
    if f.mnist_rgb and not f.source.startswith("mnist:"):
        raise common.UsageError(f"--mnist_rgb needs an mnist:DIR source, not --source={f.source}")
    if (f.tfds_data_dir or f.tfds_manual_dir) and not f.source.startswith("tfds:"):
        raise common.UsageError("--tfds_data_dir and --tfds_manual_dir apply to tfds: sources only")
    return f.out_dir or os.path.join("datasets", f.name)


def main(f):
    from progan_tf.data import prepare
    out_dir = options_from_flags(f)
    # SIGTERM unwinds like Ctrl-C, so the partial directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    source_options = dict(mnist_rgb=f.mnist_rgb, count=f.num_images, seed=f.seed, resolution=f.max_resolution or 64,
                          tfds_data_dir=f.tfds_data_dir or None, tfds_manual_dir=f.tfds_manual_dir or None)
    options = dict(max_resolution=f.max_resolution, crop=f.crop, allow_upscale=f.allow_upscale,
                   num_images=f.num_images, shards=f.shards, images_per_shard=f.images_per_shard)
    if f.dry_run:
        plan = prepare.prepare_from_spec(f.source, out_dir, True, source_options, **options)
        print(json.dumps({"out_dir": out_dir, **plan, "shards": {str(k): v for k, v in plan["shards"].items()}},
                         indent=1))
        return
    manifest = prepare.prepare_from_spec(
        f.source, out_dir, False, source_options, overwrite=f.overwrite, keep_labels=f.keep_labels,
        shuffle=f.shuffle, seed=f.seed, workers=f.workers, progress=f.progress, **options)
    r = manifest["max_resolution"]
    print(f"prepared {manifest['num_images']} images at 4x4..{r}x{r}x{manifest['num_channels']} in {out_dir}: "
          f"{manifest['images_per_second']:.1f} images/s, {manifest['num_skipped']} skipped, "
          f"{manifest['bytes'] / 2**20:.1f} MiB written in {manifest['seconds']:.1f} s")


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
