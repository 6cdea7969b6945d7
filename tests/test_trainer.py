"""The Trainer (training/trainer.py): a tiny run end to end, resume = uninterrupted, in-training metrics;
NaNs and Infs recovered from the newest checkpoint past the data that caused them; a resume on another
replica count sees the global batches an uninterrupted run would have seen."""
import json
import os
import textwrap
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from cli_processes import spawn_script
from conftest import REPO, shared_strategy
from progan_tf import runs
from progan_tf.data.pipeline import ArrayDataset
from progan_tf.errors import RunError
from progan_tf.runs import load_generator, read_state
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer
from tiny_runs import DATA, NET, SCHEDULE, SOURCE, trainer


def test_tiny_run_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    lines, ticks_seen = [], []
    config = TrainConfig(run_dir=str(run_dir), tick_kimg=0.032, checkpoint_kimg=0.096, grid_size=4)
    trainer = Trainer(NET, SCHEDULE, config, SOURCE, shared_strategy("/cpu:0"), print_fn=lines.append,
                      on_tick=lambda models, images: ticks_seen.append((images, models.phase.index)))
    state = trainer.train()
    # The plan comes before the first step; the ETA model saw 3 switches (each phase's first call, which
    # traces: 4 steps up to the first tick) and the other 4 steps of each phase as step time.
    assert lines[0].startswith("plan: 3 phases, 0.192 kimg") and lines[1] == "devices: CPU:0"
    assert lines[2].startswith("estimated time: ") and "ETA" in lines[3]
    assert len(trainer.eta.costs["switch"]) == 3 and len(trainer.eta.costs["tick"]) == 6
    assert {index: steps for index, (steps, _) in trainer.eta.measured.items()} == {0: 4, 1: 4, 2: 4}
    assert ticks_seen == [(32, 0), (64, 0), (96, 1), (128, 1), (160, 2), (192, 2)]
    assert state["images_seen"] == SCHEDULE.total_images == 192
    assert (state["resolution"], state["phase"], state["phase_index"]) == (8, "stable", 2)
    assert read_state(str(run_dir))["images_seen"] == 192
    # One write per checkpoint: the loop's save at the end is not written again after it.
    assert [line for line in lines if line.startswith("checkpoint")] == [
        "checkpoint ckpt-12 at kimg 0.1", "checkpoint ckpt-24 at kimg 0.2"]
    ticks = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    assert [t["kimg"] for t in ticks] == [0.032, 0.064, 0.096, 0.128, 0.16, 0.192]
    assert [t["alpha"] for t in ticks[2:4]] == [0.5, 1.0] and all(np.isfinite(t["loss/D"]) for t in ticks)
    assert sorted(os.listdir(run_dir / "samples"))[-1] == "reals.png"
    assert len([f for f in os.listdir(run_dir / "samples") if f.startswith("fakes")]) == 6
    assert any("8x8 fade" in line and "img/s" in line and "ETA" in line for line in lines)
    gs, config_back, _ = load_generator(str(run_dir))
    assert config_back == NET and gs.output_shape == (None, 8, 8, 3)
    # The finished run exported its Gs, which computes what the run's Gs computes.
    final = tf.saved_model.load(str(run_dir / "final"))
    z = np.random.default_rng(0).standard_normal((2, NET.latent_size)).astype(np.float32)
    served = final.signatures["serving_default"](latents=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(served, np.clip((gs(z).numpy() + 1.0) / 2.0, 0.0, 1.0), atol=1e-5)


def test_each_phase_s_data_iterator_is_deleted_off_the_training_thread(tmp_path, monkeypatch):
    """Deleting a tf.data iterator can wait tens of seconds for its pipeline's threads (the demo sat idle
    for 20-25 s before its last checkpoint); a phase switch and the end of the run must not wait for it."""
    deleted_on = []

    class Sentinel:
        def __del__(self):
            deleted_on.append(threading.current_thread().name)

    original = Trainer.dataset_iterator

    def tagged(self, phase, phase_step):
        iterator = original(self, phase, phase_step)
        iterator.sentinel = Sentinel()  # deleted with the iterator
        return iterator

    monkeypatch.setattr(Trainer, "dataset_iterator", tagged)
    trainer(tmp_path / "run").train()
    deadline = time.time() + 10
    while len(deleted_on) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert deleted_on == ["progan-drop-iterator"] * 3  # one iterator per phase, none deleted by training


RESUME_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from progan_tf.data.pipeline import ArrayDataset
    from progan_tf.data.synthetic import synthetic_images
    from progan_tf.networks import NetworkConfig
    from progan_tf.schedule import Schedule
    from progan_tf.training.config import TrainConfig
    from progan_tf.training.distribute import make_deterministic
    from progan_tf.training.trainer import Trainer

    make_deterministic()  # what --deterministic does
    net = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)
    schedule = Schedule(max_resolution=8, fade_kimg=0.128, stable_kimg=0.064, total_kimg=None,
                        batch_sizes={4: 8, 8: 8})
    source = ArrayDataset(synthetic_images(40, 8)[0])

    def trainer(run_dir):
        config = TrainConfig(run_dir=run_dir, mirror=True, tick_kimg=0.04, checkpoint_kimg=1, grid_size=4)
        return Trainer(net, schedule, config, source, print_fn=lambda *_: None)

    def weights(t):
        return [w.numpy() for model in (t.models.G, t.models.D, t.models.Gs) for w in model.weights] + \\
               [v.numpy() for opt in (t.models.g_opt, t.models.d_opt) for v in opt.variables]

    out = {}
    full = trainer(sys.argv[1] + "/full")
    out["full"] = full.train()
    first = trainer(sys.argv[1] + "/split")
    out["stopped"] = first.train(stop_at_images=112)  # mid-fade: the fade is images 64..192
    resumed = trainer(sys.argv[1] + "/split")
    out["resumed"] = resumed.train()
    a, b = weights(full), weights(resumed)
    out["same_count"] = len(a) == len(b)
    out["max_diff"] = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    print(json.dumps(out))
""")


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    process = spawn_script(RESUME_SCRIPT, [tmp_path], REPO)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["stopped"]["phase"] == "fade" and 0 < out["stopped"]["alpha"] < 1
    assert out["stopped"]["images_seen"] == 112
    for key in ("images_seen", "step", "phase_index", "alpha", "resolution"):
        assert out["resumed"][key] == out["full"][key], key
    assert out["full"]["images_seen"] == 256
    assert out["same_count"] and out["max_diff"] == 0.0


def test_in_training_swd_is_logged_and_best_kept(tmp_path):
    run_dir = tmp_path / "run"
    config = TrainConfig(run_dir=str(run_dir), tick_kimg=0.032, grid_size=4, metrics=("swd",),
                         metrics_every_kimg=0.064, metrics_num_images=32)
    lines = []
    Trainer(NET, SCHEDULE, config, SOURCE, shared_strategy("/cpu:0"), print_fn=lines.append).train()
    evaluations = [t for t in map(json.loads, open(run_dir / "metrics.jsonl")) if "metrics/SWDx1e3_avg" in t]
    assert [e["kimg"] for e in evaluations] == [0.064, 0.128, 0.192]
    assert all(e["metrics/SWDx1e3_avg"] > 0 for e in evaluations)
    # Best-keeping only in stable phases: the 4x4 phase (0.064) and the 8x8 stable end (0.192).
    best = json.load(open(run_dir / "best_8" / "assets" / "metadata.json"))
    assert best["images_seen"] == 192 and best["SWDx1e3_avg"] == evaluations[-1]["metrics/SWDx1e3_avg"]
    assert (run_dir / "best_4").is_dir()


# ---- non-finite values ---------------------------------------------------------------------------

def all_weights_finite(run_dir):
    """Every checkpoint on disk holds finite values only."""
    for state in runs.checkpoint_states(str(run_dir)):
        reader = tf.train.load_checkpoint(os.path.join(runs.checkpoint_dir(str(run_dir)), state["checkpoint"]))
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
                return False
    return True


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


# ---- resume on another replica count -------------------------------------------------------------

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
