"""Image resolutions: powers of two from 4 (the paper's first stage) up."""
import math


def is_power_of_two(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1 and value & (value - 1) == 0


def is_resolution(value):
    """Whether `value` can be a training resolution: a power of two >= 4."""
    return is_power_of_two(value) and value >= 4


def resolutions_between(low, high):
    """[low, 2 low, ..., high] for resolutions low <= high."""
    return [2 ** k for k in range(int(math.log2(low)), int(math.log2(high)) + 1)]
