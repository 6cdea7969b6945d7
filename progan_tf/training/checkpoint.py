"""Checkpoints of a training run: the phase's models and optimisers, with the run state.

A run directory (progan_tf.runs) holds `checkpoints/` written by
`tf.train.CheckpointManager` and `checkpoints/state.json`, which names the newest
complete checkpoint together with the schedule position (phase, images seen, step).
The JSON is replaced atomically only after its checkpoint is fully written, so a crash
at any moment leaves the previous consistent pair in place; the manager keeps at least
two checkpoints so the one the JSON names always exists.
"""
import os

import tensorflow as tf

from progan_tf import runs


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
      worker_id: names a non-chief worker's scratch directory.
    """

    def __init__(self, run_dir, max_to_keep=3, is_chief=True, worker_id=0):
        self.run_dir = run_dir
        self.is_chief = is_chief
        self.max_to_keep = max(2, max_to_keep)
        directory = runs.checkpoint_dir(run_dir)
        self.directory = directory if is_chief else os.path.join(directory, f".worker{worker_id}")
        os.makedirs(self.directory, exist_ok=True)

    def save(self, checkpoint, state):
        """Save `checkpoint`, then atomically record `state` (a JSON-able dict) as pointing to it."""
        manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=self.max_to_keep)
        path = manager.save(checkpoint_number=state["step"])
        if self.is_chief:
            runs.write_json_atomic(os.path.join(self.directory, runs.STATE_FILE),
                                   {**state, "checkpoint": os.path.basename(path)})
        return path

    def restore(self, checkpoint, state):
        """Restore `checkpoint` from the file `state` names; every saved value must be used."""
        path = os.path.join(runs.checkpoint_dir(self.run_dir), state["checkpoint"])
        checkpoint.restore(path).assert_existing_objects_matched()
        return path
