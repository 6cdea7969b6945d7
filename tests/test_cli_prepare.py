"""progan-prepare as users run it: flagfiles, misuse (exit 2, one line), interruption, summary."""
import glob
import json
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from cli_processes import forked, spawn
from conftest import REPO
from progan_tf.data.pipeline import open_dataset

PROGRAM = "progan-prepare"


def _prepare(args, cwd):
    """progan-prepare in a session of its own (killpg reaches its workers), forked from a process that imported
    TensorFlow once (cli_processes.spawn)."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return spawn("prepare", ["--noprogress", *args], cwd, env=env, new_session=True)


def test_each_misuse_exits_2_with_one_line_before_any_work(tmp_path):
    (tmp_path / "small").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / "small" / f"{i}.png")
    (tmp_path / "datasets" / "taken").mkdir(parents=True)
    (tmp_path / "datasets" / "taken" / "notes.txt").write_text("keep")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep")
    (tmp_path / "ours").mkdir()  # a dataset of ours (its manifest names the format): replaced only with --overwrite
    (tmp_path / "ours" / "manifest.json").write_text(json.dumps({"format": "progan_tf.tfrecord"}))
    misuses = {
        "no_source": (["--name=x"], "--source is required"),
        "missing": (["--source=no/such/dir", "--name=x"], "--source=no/such/dir does not exist"),
        "small": (["--source=small", "--name=x", "--max_resolution=16"],
                  "8x8 or smaller, below --max_resolution=16; lower it (to 8) or pass --allow_upscale"),
        "resolution": (["--source=synthetic", "--name=x", "--max_resolution=48"],
                       "--max_resolution=48 is not a power of two"),
        "exists": (["--source=synthetic", "--name=taken"], "exists and is not a progan_tf dataset"),
        "overwrite_foreign": (["--source=synthetic", "--out_dir=foreign", "--overwrite", "--num_images=16",
                               "--max_resolution=8"], "--overwrite replaces only datasets"),
        "exists_ours": (["--source=synthetic", "--out_dir=ours", "--num_images=16", "--max_resolution=8"],
                        "ours already exists; pass --overwrite to replace it"),
        "crop": (["--source=synthetic", "--name=x", "--crop=diagonal"], "--crop='diagonal' is unknown"),
        "not_int": (["--source=synthetic", "--name=x", "--workers=many"], "workers"),
    }
    cases = {**misuses, "dry": (["--source=small", "--name=x", "--dry_run"], "")}
    done = forked({name: ("prepare", ["--noprogress", *args]) for name, (args, _) in cases.items()}, tmp_path)
    dry_code, plan, dry_err = done.pop("dry")
    for name, (code, _, err) in done.items():
        assert code == 2, (name, err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith(f"{PROGRAM}: error:")]
        assert len(errors) == 1 and misuses[name][1] in errors[0], (name, err[-2000:])
    assert sorted(os.listdir(tmp_path / "datasets")) == ["taken"], "nothing may be written"
    for folder in ("datasets/taken", "foreign"):
        assert os.listdir(tmp_path / folder) == ["notes.txt"]
        assert (tmp_path / folder / "notes.txt").read_text() == "keep"
    assert os.listdir(tmp_path / "ours") == ["manifest.json"]
    assert dry_code == 0, dry_err[-2000:]
    plan = json.loads(plan)
    assert (plan["max_resolution"], plan["num_images"], plan["out_dir"]) == (8, 2, "datasets/x")


def test_flagfile_run_writes_a_dataset_and_a_summary(tmp_path):
    proc = _prepare([f"--flagfile={REPO}/datasets/synthetic.flags", "--num_images=64", "--max_resolution=16",
                     "--workers=1"], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "prepared 64 images at 4x4..16x16x3 in datasets/synthetic" in out and "images/s, 0 skipped" in out
    source = open_dataset(str(tmp_path / "datasets" / "synthetic"), num_channels=3, max_resolution=16)
    assert source.num_images == 64 and source.manifest["source"] == "synthetic seed=0"


def _partial_with_data(parent):
    for directory in glob.glob(os.path.join(parent, ".d.partial-*")):
        if any(os.path.getsize(f) > 0 for f in glob.glob(os.path.join(directory, "r*", "*.tfrecord"))):
            return directory
    return None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_interrupted_run_leaves_no_dataset_a_reader_accepts(tmp_path, sig):
    workers = 2 if sig == signal.SIGTERM else 1  # SIGTERM must also end the worker pool
    proc = _prepare(["--source=synthetic", "--out_dir=out/d", "--num_images=100000", "--max_resolution=64",
                     f"--workers={workers}"], tmp_path)
    deadline = time.time() + 90
    while _partial_with_data(tmp_path / "out") is None:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    partial = _partial_with_data(tmp_path / "out")
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)  # the tool and its workers: no chance to clean up
    else:
        os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert not os.path.exists(tmp_path / "out" / "d")
    with pytest.raises(ValueError, match="not a prepared dataset"):
        open_dataset(str(tmp_path / "out" / "d"))
    if sig == signal.SIGTERM:
        assert proc.returncode != 0 and not os.path.exists(partial), "SIGTERM cleans up"
        return
    with pytest.raises(ValueError, match="interrupted progan-prepare run"):
        open_dataset(partial)
    rerun = _prepare(["--source=synthetic", "--out_dir=out/d", "--num_images=8", "--max_resolution=8",
                      "--workers=1"], tmp_path)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-2000:]
    assert open_dataset(str(tmp_path / "out" / "d")).num_images == 8
    assert not os.path.exists(partial), "a later run removes the dead run's partial directory"
