"""Run state, atomic checkpoints and resume.

A run directory holds `checkpoints/` written by `tf.train.CheckpointManager` and
`checkpoints/state.json`, which names the newest complete checkpoint together with
the schedule position (phase, images seen, step). The JSON is replaced atomically
only after its checkpoint is fully written, so a crash at any moment leaves the
previous consistent pair in place; the manager keeps at least two checkpoints so
the one the JSON names always exists.
"""
import json
import os

import tensorflow as tf

from progan_tf import networks

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"


def write_json_atomic(path, value):
    """Write JSON to `path` via a temporary file and an atomic rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, "checkpoints")


def read_state(run_dir):
    """The run state dict of the newest complete checkpoint, or None for a new run."""
    path = os.path.join(checkpoint_dir(run_dir), STATE_FILE)
    return read_json(path) if os.path.exists(path) else None


def make_checkpoint(models, optimizers):
    """A tf.train.Checkpoint of the phase's models and optimisers.

    Args:
      models: dict name -> keras.Model (G, D, Gs).
      optimizers: dict name -> keras optimizer.
    """
    return tf.train.Checkpoint(**models, **optimizers)


class RunCheckpointer:
    """Saves and restores one run's checkpoints with their JSON state.

    Args:
      run_dir: the run directory.
      max_to_keep: checkpoints kept (at least 2, see the module docstring).
      is_chief: only the chief writes the state file; other workers save to a
        scratch directory (MultiWorkerMirroredStrategy needs every worker to save).
    """

    def __init__(self, run_dir, max_to_keep=3, is_chief=True, worker_id=0):
        self.run_dir = run_dir
        self.is_chief = is_chief
        self.max_to_keep = max(2, max_to_keep)
        directory = checkpoint_dir(run_dir)
        self.directory = directory if is_chief else os.path.join(directory, f".worker{worker_id}")
        os.makedirs(self.directory, exist_ok=True)

    def save(self, checkpoint, state):
        """Save `checkpoint`, then atomically record `state` (a JSON-able dict) as pointing to it."""
        manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=self.max_to_keep)
        path = manager.save(checkpoint_number=state["step"])
        if self.is_chief:
            write_json_atomic(os.path.join(self.directory, STATE_FILE),
                              {**state, "checkpoint": os.path.basename(path)})
        return path

    def restore(self, checkpoint, state):
        """Restore `checkpoint` from the file `state` names; every saved value must be used."""
        path = os.path.join(checkpoint_dir(self.run_dir), state["checkpoint"])
        checkpoint.restore(path).assert_existing_objects_matched()
        return path


def load_generator(run_dir, resolution=None):
    """The EMA generator (Gs) of a run's newest checkpoint, as a stable-phase model.

    Args:
      run_dir: run directory written by the trainer.
      resolution: build at this lower resolution instead of the checkpoint's (a
        fading checkpoint holds the previous stage's complete generator too).

    Returns:
      (gs keras.Model latents -> images in [-1, 1], NetworkConfig, state dict).

    Raises:
      FileNotFoundError: the run has no checkpoint.
    """
    state = read_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(run_dir)}; train first or check --run_dir")
    config = networks.NetworkConfig.from_dict(read_json(os.path.join(run_dir, CONFIG_FILE))["network"])
    saved = networks.build_generator(config, state["resolution"], fading=state["phase"] == "fade")
    tf.train.Checkpoint(Gs=saved).restore(
        os.path.join(checkpoint_dir(run_dir), state["checkpoint"])).expect_partial()
    target = resolution or state["resolution"]
    if target > state["resolution"]:
        raise ValueError(f"resolution {target} is above the checkpoint's {state['resolution']}")
    # A stable model at alpha = 1: mid-fade, this drops the old branch (every layer it
    # needs exists in the saved fading model, including the previous toRGB).
    gs = networks.build_generator(config, target)
    _copy_shared(saved, gs)
    return gs, config, state


def _copy_shared(src, dst):
    """Copy weights of every layer of `dst` from the same-named layer of `src`."""
    layers = {layer.name: layer for layer in src.layers}
    for layer in dst.layers:
        if layer.weights:
            if layer.name not in layers:
                raise ValueError(f"layer {layer.name!r} of {dst.name!r} is missing from {src.name!r}")
            for s, d in zip(layers[layer.name].weights, layer.weights):
                d.assign(s)
