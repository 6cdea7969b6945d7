"""Run directories (runs.py): an unreadable newest checkpoint is passed over for the previous one, a damaged
state.json is rebuilt, a run with no readable checkpoint is one line that rewrites nothing; and the same on
state files alone."""
import os

import pytest

from cli_processes import forked
from progan_tf import runs
from progan_tf.errors import RunError
from tiny_runs import checkpoint_files, trainer


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    trainer(tmp_path).train(stop_at_images=96)
    states = runs.checkpoint_states(str(tmp_path))
    newest, previous = states[0]["checkpoint"], states[1]["checkpoint"]
    data = [f for f in checkpoint_files(tmp_path, newest) if ".data-" in f][0]
    with open(runs.checkpoint_dir(str(tmp_path)) + "/" + data, "r+b") as f:
        f.truncate(10)
    lines = []
    resumed = trainer(tmp_path, lines=lines)
    state = resumed.train(stop_at_images=128)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and newest in warnings[0] and previous in warnings[0], lines
    assert state["images_seen"] == 128
    gs, _, loaded = runs.load_generator(str(tmp_path))  # export, generate and eval read runs the same way
    assert loaded["images_seen"] == 128


def test_a_corrupt_state_json_is_rebuilt_from_the_checkpoints(tmp_path):
    trainer(tmp_path).train(stop_at_images=64)
    with open(runs.state_path(str(tmp_path)), "w") as f:
        f.write('{"checkpoint": "ckpt-')  # cut off mid-write
    assert runs.read_state(str(tmp_path))["images_seen"] == 64
    lines = []
    assert trainer(tmp_path, lines=lines).train(stop_at_images=96)["images_seen"] == 96
    assert any(line.startswith("resumed from") and "kimg 0.1" in line for line in lines)


def test_no_usable_checkpoint_is_one_line_and_nothing_is_rewritten(tmp_path):
    trainer(tmp_path).train(stop_at_images=64)
    for state in runs.checkpoint_states(str(tmp_path)):
        for name in checkpoint_files(tmp_path, state["checkpoint"]):
            if ".data-" in name:
                open(os.path.join(runs.checkpoint_dir(str(tmp_path)), name), "w").close()  # emptied
    config_before = (tmp_path / "config.json").read_bytes()
    listing = sorted(os.listdir(runs.checkpoint_dir(str(tmp_path))))
    with pytest.raises(RunError, match="none of the 2 checkpoints in .* can be read"):
        trainer(tmp_path, mirror=True).train()  # another option too: config.json would change
    assert (tmp_path / "config.json").read_bytes() == config_before
    assert sorted(os.listdir(runs.checkpoint_dir(str(tmp_path)))) == listing
    with pytest.raises(RunError, match="none of the 2 checkpoints"):
        runs.load_generator(str(tmp_path))
    done = forked({"export": ("export", [f"--run_dir={tmp_path}", f"--export_base={tmp_path / 'exp'}"]),
                   "generate": ("generate", [f"--model={tmp_path}", f"--out_dir={tmp_path / 'out'}"]),
                   "evaluate": ("evaluate", [f"--model={tmp_path}", "--num_images=8"])}, tmp_path)
    for tool, (code, _, err) in done.items():
        ours = [line for line in err.splitlines() if line.startswith("progan-")]
        assert code == 1 and len(ours) == 1 and "checkpoints in" in ours[0], (tool, err[-2000:])
        assert "Traceback" not in err


def _state(step, resolution=4):
    return {"checkpoint": f"ckpt-{step}", "step": step, "resolution": resolution, "fading": False}


def test_the_newest_readable_checkpoint_is_restored_and_each_one_passed_over_is_named(tmp_path):
    """On state files alone (no TensorFlow checkpoint): newest step first, whatever state.json names; a state file
    cut off mid-write is ignored, a checkpoint that cannot be read is passed over with one warning."""
    run_dir = str(tmp_path)
    with pytest.raises(RunError, match="no checkpoint in .*; train first"):
        runs.restore_newest(run_dir, lambda state, path: None)
    os.makedirs(runs.checkpoint_dir(run_dir))
    for step in (4, 8, 12):
        runs.write_json_atomic(runs.state_path(run_dir, f"ckpt-{step}"), _state(step))
    runs.write_json_atomic(runs.state_path(run_dir), _state(8))  # stale: a crash before it named ckpt-12
    with open(runs.state_path(run_dir, "ckpt-16"), "w") as f:
        f.write('{"checkpoint": "ckpt-16", "st')
    assert [state["step"] for state in runs.checkpoint_states(run_dir)] == [12, 8, 4]
    assert runs.read_state(run_dir)["checkpoint"] == "ckpt-12"

    tried, warnings = [], []

    def restore(state, path):
        tried.append(os.path.basename(path))
        if state["step"] == 12:
            raise ValueError("truncated record at byte 10\nmore detail")
        return f"the weights of {state['checkpoint']}"

    state, weights = runs.restore_newest(run_dir, restore, warn=warnings.append)
    assert tried == ["ckpt-12", "ckpt-8"] and state == _state(8) and weights == "the weights of ckpt-8"
    assert warnings == [f"warning: checkpoint ckpt-12 in {runs.checkpoint_dir(run_dir)} cannot be read "
                        f"(ValueError: truncated record at byte 10); using ckpt-8 instead"]

    def unreadable(state, path):
        raise OSError("gone")

    with pytest.raises(RunError, match=r"none of the 3 checkpoints in .* can be read \(newest: OSError: gone\)"):
        runs.restore_newest(run_dir, unreadable, warn=warnings.append)
    assert len(warnings) == 1


def test_a_checkpoint_mid_fade_holds_both_resolutions():
    assert runs.resolutions_held({"resolution": 16, "fading": True}) == [16, 8]
    assert runs.resolutions_held({"resolution": 16, "fading": False}) == [16]
