"""A run directory as the trainer writes it, and the generator its checkpoints hold.

  runs/<name>/config.json              the resolved options: network, schedule, train
  runs/<name>/checkpoints/ckpt-<step>  tf.train.CheckpointManager files (G, D, Gs, optimisers)
  runs/<name>/checkpoints/state.json   the newest complete checkpoint and the schedule position

`state.json` is replaced atomically, and only after its checkpoint is complete, so a
crash at any moment leaves the previous consistent pair. Training, export, generation
and evaluation all read runs through this module.
"""
import json
import os

import tensorflow as tf

from progan_tf import networks

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"


def write_json_atomic(path, value):
    """Write JSON to `path` through a temporary file, flushed to disk, and an atomic rename."""
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
    """The state dict of the newest complete checkpoint, or None for a run that has none."""
    path = os.path.join(checkpoint_dir(run_dir), STATE_FILE)
    return read_json(path) if os.path.exists(path) else None


def read_network(run_dir):
    """The NetworkConfig a run was started with."""
    return networks.NetworkConfig(**read_json(os.path.join(run_dir, CONFIG_FILE))["network"])


def resolutions_held(state):
    """Resolutions whose complete generator a checkpoint holds: its own, and mid-fade the previous one."""
    resolution = int(state["resolution"])
    return [resolution, resolution // 2] if state["fading"] else [resolution]


def load_generator(run_dir, resolution=None):
    """The generator average Gs of a run's newest checkpoint.

    Args:
      run_dir: a run directory written by the trainer.
      resolution: None for the network the checkpoint trains, as it computes: mid-fade,
        the fading network at the checkpoint's alpha (what the training grids show). Or one
        of `resolutions_held(state)` for that stage's stable network (alpha 1).

    Returns:
      (Gs keras.Model latents -> images in [-1, 1], NetworkConfig, state dict).

    Raises:
      FileNotFoundError: the run has no checkpoint.
      ValueError: the checkpoint holds no complete generator at `resolution`.
    """
    state = read_state(run_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(run_dir)}; train first or check the run directory")
    config = read_network(run_dir)
    saved = networks.build_generator(config, state["resolution"], fading=state["fading"])
    tf.train.Checkpoint(Gs=saved).restore(os.path.join(checkpoint_dir(run_dir), state["checkpoint"])).expect_partial()
    if resolution is None:
        networks.set_alpha(saved, state["alpha"])
        return saved, config, state
    if resolution not in resolutions_held(state):
        raise ValueError(f"the checkpoint holds a complete generator only at {resolutions_held(state)}, "
                         f"not at {resolution}")
    # Every layer of the stable network of either resolution exists in the fading one.
    gs = networks.build_generator(config, resolution)
    networks.copy_weights(saved, gs, require_all=True)
    return gs, config, state
