"""Image resolutions (progan_tf/resolutions.py): powers of two from 4 up."""
from progan_tf.resolutions import is_power_of_two, is_resolution, resolutions_between


def test_resolutions_are_the_powers_of_two_from_4():
    assert [v for v in range(-8, 130) if is_power_of_two(v)] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert [v for v in range(-8, 130) if is_resolution(v)] == [4, 8, 16, 32, 64, 128]
    assert not any(is_resolution(v) for v in (True, 8.0, "8", None))
    assert resolutions_between(4, 1024) == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert resolutions_between(16, 16) == [16]
