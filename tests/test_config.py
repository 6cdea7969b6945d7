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


@pytest.mark.parametrize("field, value, message", [
    ("adam_beta1", 1.0, "<adam_beta1>=1.0 must be in [0, 1)"),
    ("adam_epsilon", 0.0, "<adam_epsilon>=0.0 must be > 0"),
    ("gp_lambda", -1.0, "<gp_lambda>=-1.0 must be >= 0"),
    ("keep_checkpoints", 1, "<keep_checkpoints>=1 must be >= 2"),
    ("metrics_num_images", 1, "<metrics_num_images>=1 must be >= 2"),
    ("steps_per_call", 0, "<steps_per_call>=0 must be >= 1"),
    ("seed", 2 ** 31, "<seed>=2147483648 must be in [0, 2**31)"),
    ("precision", "float64",
     "<precision>='float64' is unknown; choose one of float32, mixed_float16, mixed_bfloat16"),
])
def test_a_value_out_of_range_is_refused_naming_its_field_and_the_range(field, value, message):
    """The field is named as a field, so each front end writes it its own way (progan-train: --adam_beta1)."""
    with pytest.raises(ConfigError) as error:
        TrainConfig(**{field: value})
    assert error.value.message(lambda name: f"<{name}>") == message


def test_the_ends_of_each_range_are_allowed_and_noema_with_a_half_life_is_refused():
    TrainConfig(adam_beta1=0.0, adam_epsilon=1e-12, gp_lambda=0.0, keep_checkpoints=2, metrics_num_images=2,
                steps_per_call=1, seed=2 ** 31 - 1)
    with pytest.raises(ConfigError) as error:
        TrainConfig(ema=False, g_ema_kimg=10)
    assert str(error.value) == "ema is off but g_ema_kimg=10 is set; drop one"  # the library names fields, not flags
    assert error.value.message(lambda name: f"--{name}") == "--ema is off but --g_ema_kimg=10 is set; drop one"


def test_ema_beta_halves_the_old_average_every_g_ema_kimg_thousand_images_with_its_rampup():
    """beta = 0.5 ** (batch / (1000 * g_ema_kimg)); with g_ema_rampup the half-life is at most rampup x images seen."""
    assert TrainConfig(g_ema_beta=0.9).ema_beta(32, 5000) == 0.9  # no half-life: the decay per step as given
    assert TrainConfig(ema=False).ema_beta(32, 5000) == 0.0  # --noema: Gs is G after every step
    half_life = TrainConfig(g_ema_kimg=10)  # 10 000 images
    assert half_life.ema_beta(32, 5000) == pytest.approx(0.9977844, abs=1e-7)  # 0.5 ** (32 / 10 000)
    assert half_life.ema_beta(64, 5000) == pytest.approx(0.9955737, abs=1e-7)  # 0.5 ** (64 / 10 000)
    # The same window at any batch size: after 10 000 images half of the old average is left.
    for batch in (32, 64):
        assert half_life.ema_beta(batch, 0) ** (10_000 / batch) == pytest.approx(0.5)
    ramped = TrainConfig(g_ema_kimg=10, g_ema_rampup=0.05)
    assert ramped.ema_beta(32, 40_000) == pytest.approx(0.9889709, abs=1e-7)  # half-life 0.05 * 40 000 = 2 000
    assert ramped.ema_beta(32, 400_000) == ramped.ema_beta(32, 10 ** 6) == half_life.ema_beta(32, 0)  # 10 000
    assert ramped.ema_beta(32, 0) == 0.0  # nothing seen yet: nothing to average over, Gs follows G
