"""progan-export: export a run's EMA generator (Gs) as a TF Serving model version.

  progan-export --run_dir=runs/celeba_hq
      -> export/models/celeba_hq/<next version>/  (SavedModel + generator.keras)
  progan-export --run_dir=runs/celeba_hq --export_base=/srv/models/faces --version=3 --resolution=256
"""
import os

from progan_tf.cli import common

PROGRAM = "progan-export"
_GROUP = "Export"

common.define(_GROUP, "string", "run_dir", None, "Run directory written by progan-train (required).")
common.define(_GROUP, "string", "export_base", "", "Model base path holding integer versions; "
              "default export/models/<basename of --run_dir>.")
common.define(_GROUP, "integer", "version", 0, "Version to write; 0 = one more than the highest existing version.")
common.define(_GROUP, "integer", "resolution", 0, "0 (the default): the network the checkpoint trains, mid-fade "
              "at its alpha, as the training grids show it. Else the stable network of the checkpoint's "
              "resolution or, mid-fade, of the previous one.")


def options_from_flags(f):
    """Validate the flags (UsageError names a bad one) -> run_dir, export_base, version or None, resolution or None."""
    from progan_tf import export, runs
    if not f.run_dir:
        raise common.UsageError("--run_dir is required (the run directory written by progan-train)")
    if not os.path.isdir(f.run_dir):
        raise common.UsageError(f"--run_dir={f.run_dir} is not a directory")
    state = runs.read_state(f.run_dir)
    if state is None:
        raise common.UsageError(f"--run_dir={f.run_dir} has no checkpoint yet (no checkpoints/state.json)")
    export_base = f.export_base or os.path.join("export", "models", os.path.basename(os.path.normpath(f.run_dir)))
    if f.version < 0:
        raise common.UsageError(f"--version={f.version} must be a positive integer (or 0 for the next free version)")
    if f.version and f.version in export.versions(export_base):
        raise common.UsageError(f"--version={f.version} already exists in {export_base}; versions are never "
                                f"overwritten")
    if f.resolution and f.resolution not in runs.resolutions_held(state):
        raise common.UsageError(f"--resolution={f.resolution}: the newest checkpoint ({state['phase']} phase) holds "
                                f"a complete generator only at {runs.resolutions_held(state)}")
    return f.run_dir, export_base, f.version or None, f.resolution or None


def main(f):
    from progan_tf import export
    print(export.describe(export.export_run(*options_from_flags(f))))


def run():
    common.run_app(PROGRAM, __doc__, main)


if __name__ == "__main__":
    run()
