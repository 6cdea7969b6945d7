"""Test session setup: two logical CPU devices, so 2-replica strategies run on one CPU,
and what --deterministic sets, so the tests that compare runs bit for bit can.

This must happen before TensorFlow initialises its devices, i.e. at conftest import.
Strategies that do not name devices still use one device, so other tests are unaffected.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from progan_tf.training.distribute import make_deterministic  # noqa: E402

make_deterministic()
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STRATEGIES = {}


def shared_strategy(*devices):
    """One MirroredStrategy per device set and process: fresh ones over the same devices restart
    collective instance keys and collide with the previous ones."""
    if devices not in _STRATEGIES:
        _STRATEGIES[devices] = tf.distribute.MirroredStrategy(list(devices))
    return _STRATEGIES[devices]


def pytest_configure(config):
    # Keras 3 on NumPy 2 warns inside its own code on every model call; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword")


# The modules whose tests train runs, heaviest first (by --durations): run before the rest, so that with -n 2 the
# last tests handed out are short ones and neither worker waits long for the other at the end.
HEAVY_FIRST = ("test_reference.py", "test_cli_train.py", "test_trainer.py", "test_distribute.py", "test_step.py",
               "test_cli_common.py", "test_runs.py", "test_cli_prepare.py", "test_export.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order
