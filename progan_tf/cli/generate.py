"""progan-generate: images from a trained run or an exported model.

  progan-generate --source=runs/celeba_hq --seeds=0-15 --out_dir=out
      -> out/seed0000.png ... out/seed0015.png, out/grid.png
  progan-generate --source=export/models/celeba_hq --seeds=1,7,42 --gif --out_dir=out
      -> also out/interpolation.gif, a loop through the seeds' latents

The same seed gives the same image from a run, from its export and from the
exported model's `generate` signature.
"""
import os
import re

from absl import flags
from PIL import Image

from progan_tf.cli.common import UsageError, fail, run_app
from progan_tf.export import Sampler, checkpoint_resolutions, find_export, interpolation_latents
from progan_tf.training.checkpoint import read_state
from progan_tf.training.snapshots import make_grid, save_png

PROGRAM = "progan-generate"

flags.DEFINE_string("source", None, "A run directory, an exported version directory, or a model base "
                    "path (its newest version) (required).")
flags.DEFINE_string("out_dir", "generated", "Output directory, created if missing.")
flags.DEFINE_string("seeds", "0-15", "Seeds as a list of integers and ranges, e.g. '0-15' or '1,5,9-12'.")
flags.DEFINE_integer("resolution", 0, "Run sources only: the checkpoint's resolution (0, the default) or, "
                     "mid-fade, the previous one.")
flags.DEFINE_boolean("png", True, "Write one seedNNNN.png per seed.")
flags.DEFINE_boolean("grid", True, "Write grid.png with every seed.")
flags.DEFINE_integer("grid_columns", 0, "Columns of the grid; 0 = as square as possible.")
flags.DEFINE_boolean("gif", False, "Write interpolation.gif, a loop through the seeds' latents (needs >= 2 seeds).")
flags.DEFINE_integer("frames_per_seed", 16, "GIF frames between consecutive seeds.")
flags.DEFINE_integer("frame_ms", 80, "GIF frame duration in milliseconds.")
flags.DEFINE_integer("batch_size", 16, "Images per generator call.")

FLAGS = flags.FLAGS


def parse_seeds(text):
    """'1,5,9-12' -> [1, 5, 9, 10, 11, 12].

    Raises:
      UsageError: not a list of non-negative integers and ranges.
    """
    seeds = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise UsageError(f"--seeds={text!r} is not a list of non-negative integers and ranges like '0-15,42'")
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    if not seeds:
        raise UsageError("--seeds is empty; give at least one seed, e.g. --seeds=0-15")
    if max(seeds) >= 2 ** 63:
        raise UsageError(f"--seeds={text!r}: seeds must be below 2**63 (they are int64)")
    return seeds


def options_from_flags(f):
    """Validate the flags.

    Returns:
      (kind "run" | "export", path, seeds).

    Raises:
      UsageError: a one-line message naming the bad flag.
    """
    if not f.source:
        raise UsageError("--source is required (a run directory or an exported model directory)")
    if not os.path.isdir(f.source):
        raise UsageError(f"--source={f.source} is not a directory")
    export_dir = find_export(f.source)
    if export_dir:
        kind, path = "export", export_dir
        if f.resolution:
            raise UsageError(f"--resolution={f.resolution} applies to run sources only; an export has one resolution")
    elif read_state(f.source) is not None:
        kind, path = "run", f.source
        state = read_state(f.source)
        if f.resolution and f.resolution not in checkpoint_resolutions(state):
            raise UsageError(f"--resolution={f.resolution}: the newest checkpoint ({state['phase']} phase) holds "
                             f"a complete generator only at {checkpoint_resolutions(state)}")
    else:
        raise UsageError(f"--source={f.source} holds neither a checkpoint (checkpoints/state.json) nor a "
                         f"SavedModel (saved_model.pb, or integer version directories)")
    seeds = parse_seeds(f.seeds)
    if not (f.png or f.grid or f.gif):
        raise UsageError("--nopng, --nogrid and --nogif together leave nothing to write")
    if f.gif and len(seeds) < 2:
        raise UsageError(f"--gif needs at least two --seeds to interpolate between, got {f.seeds!r}")
    for name in ("frames_per_seed", "frame_ms", "batch_size"):
        if getattr(f, name) < 1:
            raise UsageError(f"--{name}={getattr(f, name)} must be at least 1")
    if f.grid_columns < 0:
        raise UsageError(f"--grid_columns={f.grid_columns} must be >= 0")
    return kind, path, seeds


def _pillow_shape(images):
    """uint8 [N, H, W, C] -> the shapes Pillow takes: [N, H, W, 3] (RGB) or [N, H, W] (grayscale)."""
    return images[..., 0] if images.shape[-1] == 1 else images


def main(argv):
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments {argv[1:]}; every option is a --flag")
    try:
        kind, path, seeds = options_from_flags(FLAGS)
    except UsageError as e:
        fail(PROGRAM, str(e))
    sampler = Sampler.from_export(path) if kind == "export" else Sampler.from_run(path, FLAGS.resolution or None)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    latents = sampler.latents(seeds)
    images = sampler.images(latents, FLAGS.batch_size)  # [N, R, R, C] uint8
    written = []
    if FLAGS.png:
        for seed, image in zip(seeds, _pillow_shape(images)):
            written.append(os.path.join(FLAGS.out_dir, f"seed{seed:04d}.png"))
            save_png(image, written[-1])
    if FLAGS.grid:
        written.append(os.path.join(FLAGS.out_dir, "grid.png"))
        save_png(make_grid(images, FLAGS.grid_columns or None), written[-1])
    if FLAGS.gif:
        frames = sampler.images(interpolation_latents(latents, FLAGS.frames_per_seed), FLAGS.batch_size)
        written.append(os.path.join(FLAGS.out_dir, "interpolation.gif"))
        first, *rest = [Image.fromarray(frame) for frame in _pillow_shape(frames)]
        first.save(written[-1], save_all=True, append_images=rest, duration=FLAGS.frame_ms, loop=0)
    print(f"{len(seeds)} seeds at {sampler.resolution}x{sampler.resolution} from {kind} {path}: "
          f"{len(written)} files in {FLAGS.out_dir}")



def run():
    run_app(PROGRAM, main)


if __name__ == "__main__":
    run()
