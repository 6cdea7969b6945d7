"""TrainConfig and the checks across configs (training/config.py): every misfit named by its option, and a
resume on other data refused unless allowed."""
import json

import pytest

from progan_tf.data.pipeline import ArrayDataset
from progan_tf.data.synthetic import synthetic_images
from progan_tf.errors import ConfigError
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig, validate
from tiny_runs import NET, SCHEDULE, SOURCE, trainer


def test_validation_names_the_option():
    config = TrainConfig(run_dir="unused")
    with pytest.raises(ValueError, match="not divisible by the 3 replicas"):
        validate(NET, SCHEDULE, config, num_replicas=3)
    odd = Schedule(max_resolution=8, batch_sizes={4: 12, 8: 12}, total_kimg=None)
    with pytest.raises(ValueError, match="mbstd_group_size=8"):
        validate(NetworkConfig(resolution=8, mbstd_group_size=8), odd, config, num_replicas=1)
    with pytest.raises(ValueError, match="loss='hinge' is unknown"):
        validate(NET, SCHEDULE, TrainConfig(run_dir="x", loss="hinge"), 1)
    with pytest.raises(ValueError, match="3 channels but num_channels=1"):
        validate(NetworkConfig(resolution=8, num_channels=1), SCHEDULE, config, 1, SOURCE)


def test_unknown_or_fid_metric_is_rejected():
    with pytest.raises(ValueError, match="metrics: unknown metrics"):
        validate(NET, SCHEDULE, TrainConfig(run_dir="x", metrics=("lpips",)), 1)
    with pytest.raises(ValueError, match="FID needs Inception weights"):
        validate(NET, SCHEDULE, TrainConfig(run_dir="x", metrics=("fid",)), 1)


def test_resuming_on_other_data_needs_allow_data_change(tmp_path):
    trainer(tmp_path).train(stop_at_images=32)
    other = ArrayDataset(synthetic_images(64, 8, seed=5)[0])
    with pytest.raises(ConfigError, match="was trained on array .* pass allow_data_change"):
        trainer(tmp_path, other).train(stop_at_images=64)
    assert trainer(tmp_path, other, allow_data_change=True).train(stop_at_images=64)["images_seen"] == 64
    assert json.load(open(tmp_path / "config.json"))["data"]["fingerprint"] == other.identity()["fingerprint"]
