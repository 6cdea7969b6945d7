"""A run directory as the trainer writes it, and the generator its checkpoints hold.

  runs/<name>/config.json              the resolved options: network, schedule, train
  runs/<name>/checkpoints/ckpt-<step>  tf.train.CheckpointManager files (G, D, Gs, optimisers)
  runs/<name>/checkpoints/ckpt-<step>.state.json   that checkpoint's schedule position
  runs/<name>/checkpoints/state.json   the newest complete checkpoint and its position

State files are replaced atomically, only after their checkpoint is complete, so a crash at any moment leaves the
previous consistent pair. An unreadable checkpoint (truncated, emptied, deleted) is passed over for the one before it,
with a warning; a damaged state.json is rebuilt from the per-checkpoint states. Training, export, generation and
evaluation all read runs through this module.
"""
import glob
import json
import os

import tensorflow as tf

from progan_tf import networks
from progan_tf.errors import RunError

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


def state_path(run_dir, checkpoint=None):
    """state.json, or the state file of one checkpoint (`ckpt-12.state.json`)."""
    return os.path.join(checkpoint_dir(run_dir), f"{checkpoint}.state.json" if checkpoint else STATE_FILE)


def _read_state_file(path):
    """A state dict, or None when the file is missing or damaged."""
    try:
        state = read_json(path)
        return state if isinstance(state, dict) and {"checkpoint", "step", "resolution"} <= set(state) else None
    except (OSError, ValueError):
        return None


def checkpoint_states(run_dir):
    """The states of the run's checkpoints, newest first: state.json's and every ckpt-N.state.json."""
    states = {}
    for path in [state_path(run_dir)] + glob.glob(os.path.join(checkpoint_dir(run_dir), "ckpt-*.state.json")):
        state = _read_state_file(path)
        if state is not None:
            states.setdefault(state["checkpoint"], state)
    return sorted(states.values(), key=lambda state: state["step"], reverse=True)


def read_state(run_dir):
    """The state of the newest checkpoint, or None for a run that has none."""
    states = checkpoint_states(run_dir)
    return states[0] if states else None


def restore_newest(run_dir, restore, warn=print):
    """`restore(state, checkpoint path)` from the newest checkpoint that can be read -> (state, what it returned).

    `restore` raises when the checkpoint cannot be read; each one passed over gets a one-line `warn`.
    RunError if no checkpoint can be read.
    """
    states, passed = checkpoint_states(run_dir), []
    for state in states:
        try:
            result = restore(state, os.path.join(checkpoint_dir(run_dir), state["checkpoint"]))
        except Exception as e:  # noqa: BLE001 (TensorFlow reports damaged files in many ways)
            reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
            passed.append((state["checkpoint"], f"{type(e).__name__}: {reason}" if reason else type(e).__name__))
            continue
        for name, reason in passed:
            warn(f"warning: checkpoint {name} in {checkpoint_dir(run_dir)} cannot be read ({reason}); "
                 f"using {state['checkpoint']} instead")
        return state, result
    if not states:
        raise RunError(f"no checkpoint in {checkpoint_dir(run_dir)}; train first, or check the run directory")
    raise RunError(f"none of the {len(states)} checkpoints in {checkpoint_dir(run_dir)} can be read (newest: "
                   f"{passed[0][1]}); restore the directory from a backup, or start afresh in another directory")


def read_network(run_dir):
    """The NetworkConfig a run was started with."""
    return networks.NetworkConfig(**read_json(os.path.join(run_dir, CONFIG_FILE))["network"])


def resolutions_held(state):
    """Resolutions whose complete generator a checkpoint holds: its own, and mid-fade the previous one."""
    resolution = int(state["resolution"])
    return [resolution, resolution // 2] if state["fading"] else [resolution]


def load_generator(run_dir, resolution=None, warn=print):
    """The generator average Gs of a run's newest checkpoint -> (Gs latents -> images in [-1, 1], NetworkConfig, state).

    `resolution` None: the network the checkpoint trains, as it computes (mid-fade, the fading network at the
    checkpoint's alpha, as the training grids show); or one of `resolutions_held(state)` for that stage's stable
    network (alpha 1), else ValueError. RunError if no checkpoint or no config.json can be read.
    """
    try:
        config = read_network(run_dir)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{os.path.join(run_dir, CONFIG_FILE)} cannot be read ({type(e).__name__}: {e}); it holds "
                       f"the network of the run, so the run cannot be loaded without it") from None

    def restore(state, path):
        saved = networks.build_generator(config, state["resolution"], fading=state["fading"])
        tf.train.Checkpoint(Gs=saved).restore(path).assert_existing_objects_matched().expect_partial()
        return saved

    state, saved = restore_newest(run_dir, restore, warn)
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
