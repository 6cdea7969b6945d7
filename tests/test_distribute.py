"""The strategy of a run and the settings that make it bit-exact (training/distribute.py): one process on its
devices, two progan-train processes on 127.0.0.1 training one model with MultiWorkerMirroredStrategy, and
what make_deterministic sets."""
import json
import os
import socket
import textwrap

import numpy as np
import tensorflow as tf

from cli_processes import spawn, spawn_script
from conftest import REPO
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
        procs.append(spawn("train", [*TINY, f"--run_dir={run_dir}", "--stop_at_kimg=0.032"], tmp_path, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, [(q.returncode, o[-1500:], e[-1500:]) for q, (o, e) in zip(procs, outputs)]
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


# Fresh processes: TF_CONFIG is read when a strategy is made, and the threading settings only count before
# TensorFlow starts (this process made its strategies and set them at import, in conftest.py).
STRATEGIES = textwrap.dedent("""
    import json, os
    import tensorflow as tf
    from progan_tf.training.distribute import make_strategy

    out = {}
    for name, cluster, devices in (("no TF_CONFIG", None, None), ("no TF_CONFIG, CPU:0", None, ["/cpu:0"]),
                                   ("one worker", {"worker": ["127.0.0.1:1"]}, ["/cpu:0"]),
                                   ("one worker, two ps", {"worker": ["127.0.0.1:1"],
                                                           "ps": ["127.0.0.1:2", "127.0.0.1:3"]}, ["/cpu:0"])):
        os.environ.pop("TF_CONFIG", None)
        if cluster:
            os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
        strategy = make_strategy(devices)
        out[name] = [type(strategy).__name__, strategy.num_replicas_in_sync,
                     [d.split("device:")[-1] for d in strategy.extended.worker_devices]]
    out["visible GPUs"] = [d.name.split("device:")[-1] for d in tf.config.list_logical_devices("GPU")]
    print(json.dumps(out))
""")

DETERMINISM = textwrap.dedent("""
    import json
    import tensorflow as tf
    from progan_tf.training.distribute import make_deterministic

    before = tf.config.threading.get_inter_op_parallelism_threads()
    make_deterministic()
    try:
        tf.random.uniform([1])  # no seed: op determinism refuses it
        unseeded = "ran"
    except RuntimeError as e:
        unseeded = str(e)
    after = tf.config.threading.get_inter_op_parallelism_threads()
    print(json.dumps({"inter_op_before": before, "inter_op_after": after, "unseeded_random_op": unseeded}))
""")


def _python(code):
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = spawn_script(code, [], REPO, env=env)  # a fresh TensorFlow runtime, without a fresh import
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_one_worker_is_a_mirrored_strategy_over_the_devices_given():
    """Only chief and worker tasks count: a cluster of one worker (and parameter servers) is one process."""
    out = _python(STRATEGIES)
    gpus = out.pop("visible GPUs")
    assert out == {
        "no TF_CONFIG": ["MirroredStrategy", max(len(gpus), 1), gpus or ["CPU:0"]],  # every GPU, else the CPU
        "no TF_CONFIG, CPU:0": ["MirroredStrategy", 1, ["CPU:0"]],
        "one worker": ["MirroredStrategy", 1, ["CPU:0"]],
        "one worker, two ps": ["MirroredStrategy", 1, ["CPU:0"]]}


def test_make_deterministic_sets_op_determinism_and_one_inter_op_thread():
    out = _python(DETERMINISM)
    assert (out["inter_op_before"], out["inter_op_after"]) == (0, 1)
    assert out["unseeded_random_op"].startswith("Random ops require a seed to be set when determinism is enabled")
