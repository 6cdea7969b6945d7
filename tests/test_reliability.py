"""No run lost: damaged checkpoints and state, NaNs, full disks, other data, another replica count.

Every fault is made on purpose (files truncated, writes failing with ENOSPC, NaN images or weights
injected) on a tiny 8x8 run; the long campaigns (20 kills) run with PROGAN_SLOW_TESTS=1.
"""
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, shared_strategy
from progan_tf import runs
from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.errors import ConfigError, RunError
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)
SCHEDULE = Schedule(max_resolution=8, fade_kimg=0.064, stable_kimg=0.064, total_kimg=None, batch_sizes={4: 8, 8: 8})
DATA = ArrayDataset(synthetic_images(64, 8)[0])


def trainer(run_dir, dataset=DATA, devices=("/cpu:0",), lines=None, **train):
    config = TrainConfig(run_dir=str(run_dir), **{"tick_kimg": 0.016, "checkpoint_kimg": 0.032, "grid_size": 4,
                                                  "steps_per_call": 2, **train})
    return Trainer(NET, SCHEDULE, config, dataset, shared_strategy(*devices),
                   print_fn=(lines.append if lines is not None else lambda *_: None))


def checkpoint_files(run_dir, name):
    return sorted(p for p in os.listdir(runs.checkpoint_dir(run_dir)) if p.startswith(name + "."))


def all_weights_finite(run_dir):
    """Every checkpoint on disk holds finite values only."""
    for state in runs.checkpoint_states(str(run_dir)):
        reader = tf.train.load_checkpoint(os.path.join(runs.checkpoint_dir(str(run_dir)), state["checkpoint"]))
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
                return False
    return True


# ---- damage --------------------------------------------------------------------------------------

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
    for tool, flag, extra in (("export", "--run_dir", f"--export_base={tmp_path / 'exp'}"),
                              ("generate", "--model", f"--out_dir={tmp_path / 'out'}"),
                              ("evaluate", "--model", "--num_images=8")):
        result = subprocess.run([sys.executable, "-m", f"progan_tf.cli.{tool}", f"{flag}={tmp_path}", extra],
                                cwd=tmp_path, capture_output=True, text=True, timeout=180)
        ours = [line for line in result.stderr.splitlines() if line.startswith("progan-")]
        assert result.returncode == 1 and len(ours) == 1 and "checkpoints in" in ours[0], (tool, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


# ---- non-finite values ---------------------------------------------------------------------------

class NaNBatches(ArrayDataset):
    """The synthetic images, but 4x4 batches `first` to `last` of each stream are NaN."""

    def __init__(self, first, last):
        super().__init__(DATA.images)
        self.first, self.last = first, last

    def batches(self, resolution, per_replica_batch, input_context=None, mirror=False, seed=0, skip_batches=0):
        clean = super().batches(resolution, per_replica_batch, input_context, mirror, seed, skip_batches)
        if resolution != 4:
            return clean
        bad = lambda i: tf.logical_and(i >= self.first, i <= self.last)
        return clean.enumerate(skip_batches).map(lambda i, x: tf.where(bad(i), x * np.nan, x))


def test_a_nan_batch_restores_the_last_checkpoint_and_skips_the_data(tmp_path):
    lines = []
    state = trainer(tmp_path, NaNBatches(first=5, last=5), lines=lines).train()
    assert state["images_seen"] == SCHEDULE.total_images
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "non-finite losses" in warnings[0], lines
    assert all_weights_finite(tmp_path)


def test_a_nan_weight_is_found_within_a_tick(tmp_path):
    poisoned = []

    def poison(models, images_seen):
        if images_seen == 48 and not poisoned:
            models.G.trainable_variables[0].assign(models.G.trainable_variables[0] * np.nan)
            poisoned.append(images_seen)

    lines = []
    run = trainer(tmp_path, lines=lines)
    run.on_tick = poison
    assert run.train()["images_seen"] == SCHEDULE.total_images
    warnings = [line for line in lines if line.startswith("warning:")]
    assert poisoned and len(warnings) == 1 and "non-finite" in warnings[0] and "ckpt-4" in warnings[0], lines
    assert all_weights_finite(tmp_path)


def test_training_that_keeps_diverging_gives_up_with_one_line(tmp_path):
    with pytest.raises(RunError, match="training diverged: non-finite losses .* 3 times"):
        trainer(tmp_path, NaNBatches(first=4, last=10 ** 6), nan_retries=2).train()
    assert all_weights_finite(tmp_path)


# ---- full disks ----------------------------------------------------------------------------------

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


def _fill(directory):
    """Write zeros into `directory` until its file system is full."""
    with open(os.path.join(directory, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def _cli(tmp_path, program, *args):
    return subprocess.run([sys.executable, "-m", f"progan_tf.cli.{program}", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_a_real_full_disk_is_one_line_for_every_tool_and_keeps_what_was_written(tmp_path):
    """A 6 MiB tmpfs, filled: prepare --overwrite, export and train each end in one line, exit 1."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC injection tests still run")
    try:
        ds, run_dir, models = disk / "ds", disk / "run", disk / "models"
        prepare = ["--source=synthetic", f"--out_dir={ds}", "--num_images=64", "--max_resolution=8",
                   "--progress=false"]
        assert _cli(tmp_path, "prepare", *prepare).returncode == 0
        manifest = (ds / "manifest.json").read_bytes()
        assert _cli(tmp_path, "train", *KILL_RUN[:-1], f"--data_dir={ds}", f"--run_dir={run_dir}").returncode == 0
        assert _cli(tmp_path, "export", f"--run_dir={run_dir}", f"--export_base={models}").returncode == 0
        _fill(disk)
        for program, args in (("prepare", [*prepare, "--overwrite", "--num_images=128"]),
                              ("export", [f"--run_dir={run_dir}", f"--export_base={models}"]),
                              ("train", [*KILL_RUN[:-1], f"--data_dir={ds}", f"--run_dir={disk / 'run2'}"])):
            result = _cli(tmp_path, program, *args)
            assert result.returncode == 1 and "Traceback" not in result.stderr, (program, result.stderr[-2000:])
            assert result.stderr.strip().count("\n") == 0 and "No space left on device" in result.stderr, program
        # What was there before is intact: the dataset, the export, the finished run.
        from progan_tf.data.pipeline import PreparedDataset
        assert (ds / "manifest.json").read_bytes() == manifest and PreparedDataset(str(ds)).level(8).shape[0] == 64
        assert sorted(os.listdir(models)) == ["1"]
        tf.saved_model.load(str(models / "1"))
        runs.load_generator(str(run_dir))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ---- resume safety -------------------------------------------------------------------------------

def test_resuming_on_other_data_needs_allow_data_change(tmp_path):
    trainer(tmp_path).train(stop_at_images=32)
    other = ArrayDataset(synthetic_images(64, 8, seed=5)[0])
    with pytest.raises(ConfigError, match="was trained on array .* pass allow_data_change"):
        trainer(tmp_path, other).train(stop_at_images=64)
    assert trainer(tmp_path, other, allow_data_change=True).train(stop_at_images=64)["images_seen"] == 64
    assert json.load(open(tmp_path / "config.json"))["data"]["fingerprint"] == other.identity()["fingerprint"]


@pytest.mark.parametrize("first, second", [(("/cpu:0", "/cpu:1"), ("/cpu:0",)), (("/cpu:0",), ("/cpu:0", "/cpu:1"))])
def test_a_run_resumes_on_another_replica_count_with_the_same_data(tmp_path, first, second):
    """Checkpoints do not depend on the strategy, and after a resume each step sees the global batch
    an uninterrupted run would have seen (mirror flips included)."""
    trainer(tmp_path / "run", devices=first, mirror=True).train(stop_at_images=80)  # mid-fade, phase step 2
    resumed = trainer(tmp_path / "run", devices=second, mirror=True)
    assert resumed.train(stop_at_images=112)["images_seen"] == 112
    straight = trainer(tmp_path / "straight", devices=("/cpu:0",), mirror=True)
    phase = SCHEDULE.phases()[1]
    for phase_step in (2, 3):
        a, b = (tf.concat(t.strategy.experimental_local_results(next(t.dataset_iterator(phase, phase_step))), 0)
                for t in (resumed, straight))
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---- kills ---------------------------------------------------------------------------------------

KILL_RUN = ["--resolution=8", "--latent_size=8", "--fmap_base=32", "--fmap_max=8", "--batch_sizes=4:8,8:8",
            "--fade_kimg=0.064", "--stable_kimg=0.064", "--total_kimg=0", "--synthetic_images=32", "--grid_size=4",
            "--tick_kimg=0.016", "--checkpoint_kimg=0.016", "--steps_per_call=1", "--deterministic"]


def _final_weights(run_dir):
    reader = tf.train.load_checkpoint(os.path.join(runs.checkpoint_dir(str(run_dir)),
                                                   runs.read_state(str(run_dir))["checkpoint"]))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if "/.ATTRIBUTES/" in n}


def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    """kill -9 during steps, checkpoint writes, the fade and phase switches; the same command each time."""
    kills = 20 if os.environ.get("PROGAN_SLOW_TESTS") else 2
    seed = int(os.environ.get("PROGAN_KILL_SEED", "1234"))
    print(f"kill seed {seed}, {kills} kills")
    rng = np.random.default_rng(seed)
    command = [sys.executable, "-m", "progan_tf.cli.train", *KILL_RUN]
    subprocess.run(command + [f"--run_dir={tmp_path / 'straight'}"], cwd=tmp_path, check=True, capture_output=True,
                   timeout=300)
    done, killed = False, 0
    while not done:
        proc = subprocess.Popen(command + [f"--run_dir={tmp_path / 'killed'}"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if killed < kills:
            try:  # TensorFlow takes a few seconds to start; the run itself some seconds more
                proc.wait(timeout=float(rng.uniform(4.0, 12.0)))
            except subprocess.TimeoutExpired:
                proc.kill()
                killed += 1
        out, err = proc.communicate(timeout=300)
        done = proc.returncode == 0 and "done:" in out
        assert proc.returncode in (0, -9), err[-3000:]
    assert killed == kills
    assert runs.read_state(str(tmp_path / "killed"))["images_seen"] == runs.read_state(
        str(tmp_path / "straight"))["images_seen"] == SCHEDULE.total_images
    a, b = _final_weights(tmp_path / "killed"), _final_weights(tmp_path / "straight")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
