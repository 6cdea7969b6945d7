"""The two kinds of failure a user sees (progan_tf/errors.py): how a ConfigError names its options."""
import pytest

from progan_tf.errors import ConfigError, RunError


def test_config_error_names_fields_or_flags_and_formats_its_values():
    error = ConfigError("{loss}={value!r} is unknown; choose one of {choices}", value="hinge",
                        choices="wgan_gp, lsgan, logistic")
    assert str(error) == "loss='hinge' is unknown; choose one of wgan_gp, lsgan, logistic"
    assert error.message(lambda field: f"--{field}") == \
        "--loss='hinge' is unknown; choose one of wgan_gp, lsgan, logistic"
    # A value that looks like a template is printed, not formatted again.
    with pytest.raises(ValueError, match=r"^batch_sizes has bad entries \{8: '\{x\}'\}$"):
        raise ConfigError("{batch_sizes} has bad entries {bad}", bad={8: "{x}"})
    assert issubclass(RunError, RuntimeError) and not issubclass(RunError, ValueError)
