"""A run's checkpoints (training/checkpoint.py): at least two kept, each with its state file; only the chief
records state; a full disk during a save is a clear error that keeps every checkpoint already written."""
import errno
import os

import pytest
import tensorflow as tf

from progan_tf import runs
from progan_tf.errors import RunError
from progan_tf.training.checkpoint import RunCheckpointer, make_checkpoint
from tiny_runs import trainer


def test_a_full_disk_is_a_clear_error_and_keeps_every_checkpoint(tmp_path, monkeypatch):
    trainer(tmp_path).train(stop_at_images=64)
    before = runs.read_state(str(tmp_path))
    real = runs.write_json_atomic

    def full(path, value):
        if path.endswith(".state.json"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, value)

    monkeypatch.setattr(runs, "write_json_atomic", full)
    with pytest.raises(RunError, match="cannot write a checkpoint .*No space left on device.* free some space"):
        trainer(tmp_path).train(stop_at_images=128)
    monkeypatch.setattr(runs, "write_json_atomic", real)
    assert runs.read_state(str(tmp_path))["checkpoint"] == before["checkpoint"]
    runs.load_generator(str(tmp_path))  # still loadable
    assert trainer(tmp_path).train(stop_at_images=128)["images_seen"] == 128


class Held:
    """What `RunCheckpointer.restore`'s build returns: anything with a checkpoint() of its values."""

    def __init__(self):
        self.value = tf.Variable(0.0)

    def checkpoint(self):
        return make_checkpoint({"value": self.value}, {})


def test_two_checkpoints_at_least_are_kept_with_their_state_files_and_the_newest_restores(tmp_path):
    run_dir, held = str(tmp_path), Held()
    chief = RunCheckpointer(run_dir, max_to_keep=1)  # 1 is raised to 2: state.json's must exist during the next save
    for step in (4, 8, 12):
        held.value.assign(float(step))
        assert chief.save(held.checkpoint(), {"step": step, "resolution": 4}).endswith(f"ckpt-{step}")
    names = os.listdir(runs.checkpoint_dir(run_dir))
    assert sorted(n for n in names if n.endswith(".index")) == ["ckpt-12.index", "ckpt-8.index"]
    assert sorted(n for n in names if n.endswith(".state.json")) == ["ckpt-12.state.json", "ckpt-8.state.json"]
    assert runs.read_state(run_dir) == {"checkpoint": "ckpt-12", "step": 12, "resolution": 4}
    state, restored, path = chief.restore(lambda state: Held())
    assert state["step"] == 12 and float(restored.value.numpy()) == 12.0 and os.path.basename(path) == "ckpt-12"

    # Another worker saves where the chief does not look, and records no state.
    worker = RunCheckpointer(run_dir, is_chief=False, worker_id=1)
    worker.save(held.checkpoint(), {"step": 16, "resolution": 4})
    assert worker.directory == os.path.join(runs.checkpoint_dir(run_dir), ".worker1")
    assert "ckpt-16.index" in os.listdir(worker.directory)
    assert not [n for n in os.listdir(worker.directory) if n.endswith(".json")]
    assert runs.read_state(run_dir)["checkpoint"] == "ckpt-12"
