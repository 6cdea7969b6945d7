"""progan-generate: images from a trained run or an exported model.

  progan-generate --model=runs/celeba_hq --seeds=0-15 --out_dir=out
      -> out/seed0000.png ... out/seed0015.png, out/grid.png
  progan-generate --model=export/models/celeba_hq --seeds=1,7,42 --gif --out_dir=out
      -> also out/interpolation.gif, a loop through the seeds' latents

The same seed gives the same image from a run, from its export and from the
exported model's `generate` signature.
"""
import re

from progan_tf.cli import common

PROGRAM = "progan-generate"
_GROUP = "Generate"

common.define(_GROUP, "string", "model", None, "A run directory, an exported version directory, or a model base "
              "path (its newest version) (required).")
common.define(_GROUP, "string", "out_dir", "generated", "Output directory, created if missing.")
common.define(_GROUP, "string", "seeds", "0-15", "Seeds as a list of integers and ranges, e.g. '0-15' or '1,5,9-12'.")
common.define(_GROUP, "integer", "resolution", 0, "Runs only: the network the checkpoint trains (0, the default: "
              "mid-fade, at its alpha), or the stable network of its resolution or, mid-fade, the previous one.")
common.define(_GROUP, "boolean", "png", True, "Write one seedNNNN.png per seed.")
common.define(_GROUP, "boolean", "grid", True, "Write grid.png with every seed.")
common.define(_GROUP, "integer", "grid_columns", 0, "Columns of the grid; 0 = as square as possible.")
common.define(_GROUP, "boolean", "gif", False, "Write interpolation.gif, a loop through the seeds' latents "
              "(needs >= 2 seeds).")
common.define(_GROUP, "integer", "frames_per_seed", 16, "GIF frames between consecutive seeds.")
common.define(_GROUP, "integer", "frame_ms", 80, "GIF frame duration in milliseconds.")
common.define(_GROUP, "integer", "batch_size", 16, "Images per generator call.")


def parse_seeds(text):
    """'1,5,9-12' -> [1, 5, 9, 10, 11, 12]; UsageError if `text` is not a list of non-negative integers and ranges."""
    seeds = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise common.UsageError(f"--seeds={text!r} is not a list of non-negative integers and ranges like "
                                    f"'0-15,42'")
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    if not seeds:
        raise common.UsageError("--seeds is empty; give at least one seed, e.g. --seeds=0-15")
    if max(seeds) >= 2 ** 63:
        raise common.UsageError(f"--seeds={text!r}: seeds must be below 2**63 (they are int64)")
    return seeds


def options_from_flags(f):
    """Validate the flags (UsageError names a bad one); returns the seeds."""
    if not f.model:
        raise common.UsageError("--model is required (a run directory or an exported model directory)")
    seeds = parse_seeds(f.seeds)
    if not (f.png or f.grid or f.gif):
        raise common.UsageError("--nopng, --nogrid and --nogif together leave nothing to write")
    if f.gif and len(seeds) < 2:
        raise common.UsageError(f"--gif needs at least two --seeds to interpolate between, got {f.seeds!r}")
    common.check_at_least(f, 1, "frames_per_seed", "frame_ms", "batch_size")
    common.check_at_least(f, 0, "grid_columns", "resolution")
    return seeds


def main(f):
    from progan_tf import sampling
    seeds = options_from_flags(f)
    sampler = sampling.open_sampler(f.model, f.resolution or None)
    written = sampling.write_samples(sampler, f.out_dir, seeds, f.png, f.grid, f.gif, f.grid_columns,
                                     f.frames_per_seed, f.frame_ms, f.batch_size)
    print(f"{len(seeds)} seeds at {sampler.resolution}x{sampler.resolution} from {f.model}: "
          f"{len(written)} files in {f.out_dir}")


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
