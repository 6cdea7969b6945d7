"""The tf.distribute strategy of a run, and the settings that make it bit-exact."""
import json
import os

import tensorflow as tf


def make_strategy(devices=None):
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else MirroredStrategy.

    `devices`: device names for MirroredStrategy; None means every visible GPU (or the CPU).
    """
    if is_multi_worker():
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy(devices or None)


def is_multi_worker():
    """Whether TF_CONFIG names several workers (a chief counts as one)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1


def make_deterministic():
    """Make reruns and resumes bit-exact: TensorFlow op determinism, and one op at a time.

    Op determinism alone is not enough on x86: TensorFlow's oneDNN kernels occasionally compute a different result when
    other ops run beside them (a 4x4 stage, 40 steps: about one process in four ended with different weights, none with
    one inter-op thread). One inter-op thread costs about 20 % per step (benchmarks/RESULTS.md). Call it before
    TensorFlow runs anything, else RuntimeError (TensorFlow is already initialised).
    """
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
