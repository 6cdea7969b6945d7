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

from progan_tf.cli import common

PROGRAM = "progan-eval"
_GROUP = "Evaluate"

common.define(_GROUP, "string", "model", "", "Run directory, export version directory, or export base directory.")
common.define(_GROUP, "string", "data_dir", "", "Prepared dataset (progan-prepare); empty = the embedded synthetic "
              "shapes.")
common.define(_GROUP, "integer", "synthetic_images", 4096, "Embedded synthetic images when --data_dir is empty.")
common.define(_GROUP, "integer", "data_seed", 0, "Seed of the embedded synthetic set (progan-train's --seed).")
common.define(_GROUP, "list", "metrics", ["swd", "msssim"], "Metrics: swd, msssim, fid.")
common.define(_GROUP, "integer", "num_images", 16384, "Images per side (the paper: 16384); capped at the dataset "
              "size.")
common.define(_GROUP, "integer", "resolution", 0, "Runs only: evaluate this stage (0 = the network the checkpoint "
              "trains).")
common.define(_GROUP, "integer", "batch_size", 64, "Images per generator call.")
common.define(_GROUP, "integer", "seed", 0, "Seed of latents, SWD neighbourhoods and MS-SSIM pairs.")
common.define(_GROUP, "string", "inception_weights", "", "Local Keras InceptionV3 'notop' h5 weights (needed for "
              "fid).")
common.define(_GROUP, "string", "cache_dir", "", "Where real statistics are cached (default <data_dir>/"
              "metrics_cache; none for the synthetic set).")
common.define(_GROUP, "string", "out", "", "Write the result as JSON here (default: print it).")


def options_from_flags(f):
    """Validate the flags (UsageError names a bad one); returns the metric tuple."""
    from progan_tf.metrics import evaluate, fid

    if not f.model or not os.path.exists(f.model):
        raise common.UsageError(f"--model={f.model!r} does not exist; give a run directory or an export directory")
    if f.data_dir and not os.path.isdir(f.data_dir):
        raise common.UsageError(f"--data_dir={f.data_dir} does not exist; prepare it with progan-prepare")
    try:
        metrics = evaluate.validate_metrics(f.metrics)
    except ValueError as e:
        raise common.UsageError(f"--metrics: {e}") from None
    if "fid" in metrics:
        fid.check_inception_weights(f.inception_weights)  # a ConfigError: one line naming --inception_weights
    common.check_at_least(f, 2, "num_images", "batch_size", "synthetic_images")
    common.check_at_least(f, 0, "resolution", "seed", "data_seed")
    return metrics


def main(f):
    from progan_tf.metrics import evaluate
    result = evaluate.evaluate_model(
        f.model, f.data_dir, options_from_flags(f), f.num_images, f.resolution or None, f.batch_size, f.seed,
        f.inception_weights, f.cache_dir, f.synthetic_images, f.data_seed)
    print(evaluate.format_table(result))
    if f.out:
        with open(f.out, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
        print(f"wrote {f.out}")
    else:
        print(json.dumps(result))


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
