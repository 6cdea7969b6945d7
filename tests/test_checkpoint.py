"""A run's checkpoints (training/checkpoint.py): a full disk during a save is a clear error that keeps
every checkpoint already written."""
import errno

import pytest

from progan_tf import runs
from progan_tf.errors import RunError
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
