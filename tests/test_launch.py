"""What progan-train does around the Trainer (progan_tf/training/launch.py): devices and the training data."""
import numpy as np
import pytest

from progan_tf.data.synthetic import synthetic_images
from progan_tf.errors import ConfigError
from progan_tf.networks import NetworkConfig
from progan_tf.training import launch


def test_devices_may_be_spelled_any_way_and_a_missing_one_is_named():
    launch.check_devices(["CPU:0", "/cpu:1", "/device:CPU:0", "cpu"])  # conftest splits the CPU in two
    with pytest.raises(ConfigError) as error:
        launch.check_devices(["cpu:0", "gpu:0", "/device:GPU:1"])
    assert error.value.message(lambda field: f"--{field}") == \
        "--devices: no gpu:0, /device:GPU:1 on this machine; its devices are CPU:0, CPU:1"


def test_without_a_data_dir_the_run_trains_on_the_embedded_images():
    lines = []
    data = launch.open_training_data(NetworkConfig(resolution=8), synthetic_images=5, seed=2, print_fn=lines.append)
    assert lines == ["generating 5 embedded synthetic images at 8x8"] and data.name == "synthetic"
    np.testing.assert_array_equal(data.images, synthetic_images(5, 8, seed=2)[0])
