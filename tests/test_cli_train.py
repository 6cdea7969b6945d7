"""progan-train as users run it: misuse (exit 2, one line), a resume, the 1024x1024 step, prepared data;
kill -9 at random moments loses nothing, and a real full disk is one line for it and the tools beside it."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from cli_processes import forked, spawn
from conftest import REPO
from progan_tf import runs
from tiny_runs import SCHEDULE

TINY = ["--resolution=8", "--fmap_base=32", "--fmap_max=8", "--latent_size=8", "--batch_sizes=4:8,8:8",
        "--fade_kimg=0.016", "--stable_kimg=0.016", "--total_kimg=0", "--synthetic_images=16", "--grid_size=4",
        "--tick_kimg=0.016"]

BUFFERED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # Python's default for a pipe

MISUSES = {
    "resolution": (["--resolution=48"], "--resolution=48 is not a power of two"),
    "replicas": (["--cpu_devices=2", "--devices=CPU:0,CPU:1", "--batch_sizes=4:8,8:7"],
                 "batch size 7 at 8x8 is not divisible by the 2 replicas"),
    "mbstd": (["--batch_sizes=4:8,8:12", "--mbstd_group_size=8"],
              "per-replica batch 12 at 8x8 is not divisible by --mbstd_group_size=8"),
    "loss": (["--loss=hinge"], "--loss='hinge' is unknown; choose one of wgan_gp, lsgan, logistic"),
    "batch_syntax": (["--batch_sizes=4=8"], "--batch_sizes='4=8' is not a list of resolution:value pairs"),
    "data_dir": (["--data_dir=no/such/dir"], "--data_dir=no/such/dir does not exist"),
    "precision": (["--precision=float64"], "--precision='float64' is unknown"),
    "positional": (["extra"], "unexpected arguments ['extra']"),
    "devices": (["--devices=GPU:0"], "--devices: no GPU:0 on this machine; its devices are CPU:0"),
    "negative_lr": (["--learning_rates=8:-0.1"], "--learning_rates has bad entries {8: -0.1}"),
    "keep": (["--keep_checkpoints=0"], "--keep_checkpoints=0 must be >= 2"),
    "stop_at": (["--stop_at_kimg=-1"], "--stop_at_kimg=-1.0 must be >= 0"),
    "noema": (["--noema", "--g_ema_kimg=10"], "--ema is off but --g_ema_kimg=10.0 is set; drop one"),
}


def _train(args, cwd):
    return spawn("train", args, cwd)  # a fork of a process that imported TensorFlow once (cli_processes)


def test_each_misuse_exits_2_with_one_line(tmp_path):
    done = forked({name: ("train", TINY + [f"--run_dir={tmp_path / name}"] + args)
                   for name, (args, _) in MISUSES.items()}, tmp_path)
    for name, (code, out, err) in done.items():
        message = MISUSES[name][1]
        assert code == 2, (name, err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith("progan-train: error:")]
        assert len(errors) == 1 and message in errors[0], (name, err[-2000:])
        assert not os.path.exists(tmp_path / name / "checkpoints"), "nothing may be written"


def test_tiny_cli_run_resumes_when_run_again_with_the_networks_it_started_with(tmp_path):
    """A run started unfused (as before the fused defaults) resumes unfused when the flags are left out;
    a flag given explicitly against the run is refused, and nothing is written."""
    args = TINY + [f"--run_dir={tmp_path / 'run'}"]
    first = _train(args + ["--stop_at_kimg=0.024", "--fused_upsample=0", "--fused_downsample=0"], tmp_path)
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-2000:]
    assert "done: 0.0 kimg at 8x8" in out  # 24 images: 4x4 stable (16) then into the 8x8 fade
    written = sorted(os.listdir(runs.checkpoint_dir(tmp_path / "run")))
    code, _, err = forked({"clash": ("train", args + ["--fused_downsample=8"])}, tmp_path)["clash"]
    assert code == 2 and "started with different fused_downsample" in err, err[-2000:]
    assert sorted(os.listdir(runs.checkpoint_dir(tmp_path / "run"))) == written
    second = _train(args, tmp_path)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-2000:]
    assert "with its own fused_downsample=0, fused_upsample=0" in out
    assert "resumed from" in out and "8x8 fade" in out
    state = json.load(open(tmp_path / "run" / "checkpoints" / "state.json"))
    assert state["images_seen"] == 48 and state["resolution"] == 8
    assert json.load(open(tmp_path / "run" / "config.json"))["network"]["fused_downsample"] == 0


def test_progress_lines_reach_a_pipe_as_they_happen(tmp_path):
    """`progan-train ... | tee train.log` shows each line when it happens, not all of them at the exit."""
    proc = subprocess.Popen([sys.executable, "-m", "progan_tf.cli.train", *TINY, f"--run_dir={tmp_path / 'run'}"],
                            cwd=tmp_path, env=BUFFERED_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("generating") and runs.read_state(str(tmp_path / "run")) is None  # no step yet
    proc.kill()  # the rest of the run is test_training_on_a_prepared_dataset's
    proc.communicate(timeout=60)


FULL_STEP = textwrap.dedent("""
    import dataclasses, json, sys
    import numpy as np
    from absl import flags
    from progan_tf.cli import options as cli
    from progan_tf.cli import train  # noqa: F401 (its flags)
    from progan_tf.data.pipeline import ArrayDataset
    from progan_tf.training.trainer import Trainer
    flags.FLAGS(["progan-train", "--flagfile=configs/celeba_hq_1024.flags", "--data_dir=",
                 "--run_dir=" + sys.argv[1]])
    network, schedule, config = cli.options_from_flags(flags.FLAGS)
    # Jump straight to the 1024x1024 stage and take one step on random 1024^2 images.
    schedule = dataclasses.replace(schedule, start_resolution=1024, total_kimg=None, stable_kimg=0.004)
    config = dataclasses.replace(config, grid_size=1)
    images = np.random.default_rng(0).integers(0, 256, (4, 1024, 1024, 3), dtype=np.uint8)
    trainer = Trainer(network, schedule, config, ArrayDataset(images), print_fn=print)
    state = trainer.train()
    m = trainer.models
    print(json.dumps({"images_seen": state["images_seen"], "g": m.G.count_params(), "d": m.D.count_params(),
                      "finite": bool(all(np.isfinite(w.numpy()).all() for w in m.G.weights + m.D.weights))}))
""")


@pytest.mark.skipif(not os.environ.get("PROGAN_SLOW_TESTS"), reason="a 1024x1024 step takes minutes on a CPU; "
                    "PROGAN_SLOW_TESTS=1 runs it")
def test_paper_config_runs_a_step_at_1024(tmp_path):
    result = subprocess.run([sys.executable, "-c", FULL_STEP, str(tmp_path / "full")], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["images_seen"] == 4 and out["finite"]
    assert out["g"] == pytest.approx(23.1e6, abs=0.05e6) and out["d"] == pytest.approx(23.1e6, abs=0.05e6)


def test_training_on_a_prepared_dataset(tmp_path):
    """The README's main path: progan-prepare the synthetic set, then train on it."""
    from progan_tf.data.prepare import prepare_dataset
    from progan_tf.data.sources import SyntheticSource
    data_dir = tmp_path / "datasets" / "synthetic"
    prepare_dataset(SyntheticSource(32, 8, seed=0), str(data_dir), max_resolution=8, workers=1, progress=False)
    ok = _train(TINY + [f"--data_dir={data_dir}", f"--run_dir={tmp_path / 'run'}"], tmp_path)
    refused = forked({"bad": ("train", TINY + [f"--data_dir={data_dir}", "--num_channels=1",
                                               f"--run_dir={tmp_path / 'bad'}"]),
                      "big": ("train", TINY + [f"--data_dir={data_dir}", "--resolution=16",
                                               "--batch_sizes=4:8,8:8,16:8", f"--run_dir={tmp_path / 'big'}"])},
                     tmp_path)
    out, err = ok.communicate(timeout=180)
    assert ok.returncode == 0, err[-2000:]
    assert "done: 0.0 kimg at 8x8" in out and (tmp_path / "run" / "final" / "saved_model.pb").exists()
    for name, message in (("bad", "has 3 channel(s) but --num_channels=1: use --num_channels=3"),
                          ("big", "--max_resolution=16")):
        code, out, err = refused[name]
        assert code == 2, err[-2000:]
        assert message in err.splitlines()[-1], err[-2000:]


# ---- kills and a real full disk ------------------------------------------------------------------

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
    # The uninterrupted run goes alongside the killed ones (mostly single-threaded tracing: a core is free).
    straight = spawn("train", KILL_RUN + [f"--run_dir={tmp_path / 'straight'}"], tmp_path)
    done, killed = False, 0
    while not done:
        # Without PYTHONUNBUFFERED: the lines must come as they happen by themselves (as into `| tee`).
        proc = spawn("train", KILL_RUN + [f"--run_dir={tmp_path / 'killed'}"], tmp_path, env=BUFFERED_ENV)
        if killed < kills:
            # The moment: after a random number of the checkpoints still ahead (0: while starting or
            # tracing), then a random fraction of a second into the steps, the next write or a switch.
            # Counted in checkpoints rather than seconds, so no run can finish before its kill.
            state = runs.read_state(str(tmp_path / "killed"))
            left = (SCHEDULE.total_images - (state["images_seen"] if state else 0)) // 16
            after, seen = int(rng.integers(0, max(left - 2, 1))), 0
            for line in proc.stdout:
                seen += line.startswith("checkpoint ")
                if seen >= after:
                    break
            time.sleep(float(rng.uniform(0.0, 0.5)))
            if proc.poll() is None:
                proc.kill()
                killed += 1
        out, err = proc.communicate(timeout=300)
        done = proc.returncode == 0 and "done:" in out
        assert proc.returncode in (0, -9), err[-3000:]
    assert killed == kills
    _, straight_err = straight.communicate(timeout=300)
    assert straight.returncode == 0, straight_err[-3000:]
    assert runs.read_state(str(tmp_path / "killed"))["images_seen"] == runs.read_state(
        str(tmp_path / "straight"))["images_seen"] == SCHEDULE.total_images
    a, b = _final_weights(tmp_path / "killed"), _final_weights(tmp_path / "straight")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _fill(directory):
    """Write zeros into `directory` until its file system is full."""
    with open(os.path.join(directory, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


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
        made = forked({"prepare": ("prepare", prepare),
                       "train": ("train", [*KILL_RUN[:-1], f"--data_dir={ds}", f"--run_dir={run_dir}"]),
                       "export": ("export", [f"--run_dir={run_dir}", f"--export_base={models}"])}, tmp_path)
        assert all(code == 0 for code, _, _ in made.values()), made
        manifest = (ds / "manifest.json").read_bytes()
        _fill(disk)
        full = forked({"prepare": ("prepare", [*prepare, "--overwrite", "--num_images=128"]),
                       "export": ("export", [f"--run_dir={run_dir}", f"--export_base={models}"]),
                       "train": ("train", [*KILL_RUN[:-1], f"--data_dir={ds}", f"--run_dir={disk / 'run2'}"])},
                      tmp_path)
        for program, (code, _, err) in full.items():
            assert code == 1 and "Traceback" not in err, (program, err[-2000:])
            assert err.strip().count("\n") == 0 and "No space left on device" in err, program
        # What was there before is intact: the dataset, the export, the finished run.
        from progan_tf.data.pipeline import PreparedDataset
        assert (ds / "manifest.json").read_bytes() == manifest and PreparedDataset(str(ds)).level(8).shape[0] == 64
        assert sorted(os.listdir(models)) == ["1"]
        tf.saved_model.load(str(models / "1"))
        runs.load_generator(str(run_dir))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


STOP_RUN = ["--resolution=8", "--latent_size=8", "--fmap_base=32", "--fmap_max=8", "--batch_sizes=4:8,8:8",
            "--fade_kimg=4", "--stable_kimg=0.016", "--total_kimg=0", "--synthetic_images=32", "--grid_size=4",
            "--tick_kimg=0.064", "--checkpoint_kimg=100"]


def _signal_on(proc, pattern, signals, gap=0.0):
    """Read `proc`'s lines until one matches `pattern`, then send `signals`; returns when they were sent."""
    for line in proc.stdout:
        if re.search(pattern, line):
            break
    sent = time.monotonic()
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(gap)
    return sent


def test_ctrl_c_stops_in_the_fade_saves_and_says_how_to_resume_and_a_second_one_quits_at_once(tmp_path):
    """SIGTERM (as Ctrl-C) finishes the current call of the step, saves, never starts the next phase and
    names where it stopped; a second Ctrl-C exits at once and the run still resumes from its newest
    complete checkpoint."""
    run_dir = tmp_path / "run"
    args = STOP_RUN + [f"--run_dir={run_dir}"]
    proc = _train(args, tmp_path)
    sent = _signal_on(proc, r"\| 8x8 fade ", [signal.SIGTERM])
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == 0, err[-2000:]
    stop = re.search(r"stopped at ([\d.]+) kimg \(8x8 fade, alpha ([\d.]+)\); run the same command to resume", out)
    assert stop, out[-2000:]
    assert "phase 2" not in out and "done:" not in out and "exported" not in out
    assert took < 20, f"{took:.1f} s from Ctrl-C to the exit"
    state = runs.read_state(str(run_dir))
    assert state["phase"] == "fade" and state["resolution"] == 8
    assert f"{state['images_seen'] / 1000:.1f}" == stop.group(1)
    assert 16 < state["images_seen"] < 16 + 4000  # inside the 8x8 fade, saved at the stop

    again = _train(args, tmp_path)
    sent = _signal_on(again, r"\| 8x8 fade ", [signal.SIGINT, signal.SIGINT], gap=0.05)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "stopping at once" in out and time.monotonic() - sent < 10
    assert runs.read_state(str(run_dir))["images_seen"] >= state["images_seen"]
    assert runs.load_generator(str(run_dir), warn=lambda _: None) is not None  # the newest checkpoint reads
