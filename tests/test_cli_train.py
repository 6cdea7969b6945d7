import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

TINY = ["--resolution=8", "--fmap_base=32", "--fmap_max=8", "--latent_size=8", "--batch_sizes=4:8,8:8",
        "--fade_kimg=0.016", "--stable_kimg=0.016", "--total_kimg=0", "--synthetic_images=16", "--grid_size=4",
        "--tick_kimg=0.016"]

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
    "noema": (["--noema", "--g_ema_kimg=10"], "--ema is off (--noema) but --g_ema_kimg=10.0 is set"),
}


def _train(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "progan_tf.cli.train", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_each_misuse_exits_2_with_one_line(tmp_path):
    procs = {name: _train(TINY + [f"--run_dir={tmp_path / name}"] + args, tmp_path)
             for name, (args, _) in MISUSES.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        message = MISUSES[name][1]
        assert proc.returncode == 2, (name, err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith("progan-train: error:")]
        assert len(errors) == 1 and message in errors[0], (name, err[-2000:])
        assert not os.path.exists(tmp_path / name / "checkpoints"), "nothing may be written"


def test_tiny_cli_run_resumes_when_run_again(tmp_path):
    args = TINY + [f"--run_dir={tmp_path / 'run'}"]
    first = _train(args + ["--stop_at_kimg=0.024"], tmp_path)
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-2000:]
    assert "done: 0.0 kimg at 8x8" in out  # 24 images: 4x4 stable (16) then into the 8x8 fade
    second = _train(args, tmp_path)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-2000:]
    assert "resumed from" in out and "8x8 fade" in out
    state = json.load(open(tmp_path / "run" / "checkpoints" / "state.json"))
    assert state["images_seen"] == 48 and state["resolution"] == 8


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
    bad = _train(TINY + [f"--data_dir={data_dir}", "--num_channels=1", f"--run_dir={tmp_path / 'bad'}"], tmp_path)
    big = _train(TINY + [f"--data_dir={data_dir}", "--resolution=16", "--batch_sizes=4:8,8:8,16:8",
                         f"--run_dir={tmp_path / 'big'}"], tmp_path)
    out, err = ok.communicate(timeout=180)
    assert ok.returncode == 0, err[-2000:]
    assert "done: 0.0 kimg at 8x8" in out and (tmp_path / "run" / "final" / "saved_model.pb").exists()
    for proc, message in ((bad, "has 3 channel(s) but --num_channels=1: use --num_channels=3"),
                          (big, "--max_resolution=16")):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 2, err[-2000:]
        assert message in err.splitlines()[-1], err[-2000:]
