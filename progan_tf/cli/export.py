"""progan-export: export a run's EMA generator (Gs) as a TF Serving model version.

  progan-export --run_dir=runs/celeba_hq
      -> export/models/celeba_hq/<next version>/  (SavedModel + generator.keras)
  progan-export --run_dir=runs/celeba_hq --export_base=/srv/models/faces --version=3 --resolution=256
"""
import os

from absl import flags

from progan_tf.cli.common import UsageError, fail, run_app
from progan_tf.export import checkpoint_resolutions, export_run, read_metadata, versions
from progan_tf.training.checkpoint import read_state

PROGRAM = "progan-export"

flags.DEFINE_string("run_dir", None, "Run directory written by progan-train (required).")
flags.DEFINE_string("export_base", "", "Model base path holding integer versions; "
                    "default export/models/<basename of --run_dir>.")
flags.DEFINE_integer("version", 0, "Version to write; 0 = one more than the highest existing version.")
flags.DEFINE_integer("resolution", 0, "Export this stage: the checkpoint's resolution (0, the default) or, "
                     "mid-fade, the previous one.")

FLAGS = flags.FLAGS


def options_from_flags(f):
    """Validate the flags and resolve defaults.

    Returns:
      (run_dir, export_base, version or None, resolution or None).

    Raises:
      UsageError: a one-line message naming the bad flag.
    """
    if not f.run_dir:
        raise UsageError("--run_dir is required (the run directory written by progan-train)")
    if not os.path.isdir(f.run_dir):
        raise UsageError(f"--run_dir={f.run_dir} is not a directory")
    state = read_state(f.run_dir)
    if state is None:
        raise UsageError(f"--run_dir={f.run_dir} has no checkpoint yet (no checkpoints/state.json)")
    export_base = f.export_base or os.path.join("export", "models", os.path.basename(os.path.normpath(f.run_dir)))
    if f.version < 0:
        raise UsageError(f"--version={f.version} must be a positive integer (or 0 for the next free version)")
    if f.version and f.version in versions(export_base):
        raise UsageError(f"--version={f.version} already exists in {export_base}; versions are never overwritten")
    if f.resolution and f.resolution not in checkpoint_resolutions(state):
        raise UsageError(f"--resolution={f.resolution}: the newest checkpoint ({state['phase']} phase) holds a "
                         f"complete generator only at {checkpoint_resolutions(state)}")
    return f.run_dir, export_base, f.version or None, f.resolution or None


def main(argv):
    if len(argv) > 1:
        fail(PROGRAM, f"unexpected arguments {argv[1:]}; every option is a --flag")
    try:
        run_dir, export_base, version, resolution = options_from_flags(FLAGS)
    except UsageError as e:
        fail(PROGRAM, str(e))
    path = export_run(run_dir, export_base, version, resolution)
    metadata = read_metadata(path)
    print(f"exported Gs at {metadata['resolution']}x{metadata['resolution']} "
          f"({metadata['images_seen'] / 1000:.1f} kimg) to {path}")



def run():
    run_app(PROGRAM, main)


if __name__ == "__main__":
    run()
