"""Two progan-train processes on 127.0.0.1 train one model with MultiWorkerMirroredStrategy."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from test_cli_train import TINY


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_in_lockstep(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run_dir = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "progan_tf.cli.train", *TINY, f"--run_dir={run_dir}", "--stop_at_kimg=0.032"],
            env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "done: 0.0 kimg at 8x8" in out

    # The chief (worker 0) owns the run directory; worker 1 saved to its scratch directory.
    state = json.load(open(run_dir / "checkpoints" / "state.json"))
    assert state["images_seen"] == 32 and state["phase"] == "fade"
    assert (run_dir / "samples").is_dir() and (run_dir / "metrics.jsonl").exists()
    chief = tf.train.load_checkpoint(str(run_dir / "checkpoints" / state["checkpoint"]))
    other = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints" / ".worker1")))
    names = [n for n in chief.get_variable_to_shape_map() if n.startswith(("G/", "D/", "Gs/")) and "VARIABLE" in n]
    assert len(names) > 10
    for name in names:  # replicas on both machines hold the same weights after every step
        np.testing.assert_array_equal(chief.get_tensor(name), other.get_tensor(name))
