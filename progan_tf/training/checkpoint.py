"""Checkpoints of a training run: the phase's models and optimisers, with the run state.

The layout and why a crash at any moment leaves a consistent pair: progan_tf.runs. The manager keeps at least two
checkpoints, so the one state.json names always exists.
"""
import glob
import os

import tensorflow as tf

from progan_tf import runs
from progan_tf.errors import RunError


def make_checkpoint(models, optimizers):
    """A tf.train.Checkpoint of the phase's models (G, D, Gs) and optimisers, each a dict name -> Keras object."""
    return tf.train.Checkpoint(**models, **optimizers)


class RunCheckpointer:
    """Saves and restores one run's checkpoints with their JSON state.

    `max_to_keep`: checkpoints kept (at least 2, see the module docstring). Only the chief (`is_chief`) writes the state
    file; other workers save to a scratch directory named by `worker_id` (MultiWorkerMirroredStrategy needs every
    worker to save).
    """

    def __init__(self, run_dir, max_to_keep=3, is_chief=True, worker_id=0):
        self.run_dir = run_dir
        self.is_chief = is_chief
        self.max_to_keep = max(2, max_to_keep)
        directory = runs.checkpoint_dir(run_dir)
        self.directory = directory if is_chief else os.path.join(directory, f".worker{worker_id}")
        os.makedirs(self.directory, exist_ok=True)

    def save(self, checkpoint, state):
        """Save `checkpoint`, then atomically record `state` (a JSON-able dict) as pointing to it; returns its path.

        RunError if it cannot be written (a full or read-only disk): the checkpoints already written are untouched and
        the run resumes from the newest of them.
        """
        try:
            manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=self.max_to_keep)
            path = manager.save(checkpoint_number=state["step"])
            if self.is_chief:
                state = {**state, "checkpoint": os.path.basename(path)}
                runs.write_json_atomic(runs.state_path(self.run_dir, state["checkpoint"]), state)
                runs.write_json_atomic(runs.state_path(self.run_dir), state)
                self._remove_orphan_states()
        except (OSError, tf.errors.OpError) as e:
            message = getattr(e, "message", None) or f"{e.strerror or e}"
            raise RunError(f"cannot write a checkpoint in {self.directory} ({message.strip().splitlines()[0]}); "
                           f"free some space or make it writable and run the same command again: it resumes "
                           f"from the newest complete checkpoint") from None
        return path

    def _remove_orphan_states(self):
        """State files whose checkpoint the manager has deleted (it keeps max_to_keep)."""
        for path in glob.glob(os.path.join(self.directory, "ckpt-*.state.json")):
            if not os.path.exists(path[:-len(".state.json")] + ".index"):
                os.remove(path)

    def restore(self, build, warn=print):
        """The newest checkpoint that can be read, restored into the models `build(state)` makes.

        Returns (state, models, path). Every saved value must be used (`assert_existing_objects_matched`). RunError if
        no checkpoint can be read.
        """
        def restore(state, path):
            models = build(state)
            models.checkpoint().restore(path).assert_existing_objects_matched()
            return models, path

        state, (models, path) = runs.restore_newest(self.run_dir, restore, warn)
        return state, models, path
