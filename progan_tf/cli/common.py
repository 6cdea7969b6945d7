"""Helpers shared by the progan-* command-line tools."""
import sys


class UsageError(ValueError):
    """Bad command-line input: reported as one line with exit code 2."""


def fail(program, message):
    """Print `program: error: message` to stderr and exit with code 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_int_map(flag_name, text, value_type=int):
    """Parse "4:128,8:64" into {4: 128, 8: 64}; empty text gives {}."""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition(":")
        try:
            if not sep:
                raise ValueError
            result[int(key)] = value_type(value)
        except ValueError:
            raise UsageError(f"--{flag_name}={text!r} is not a list of resolution:value pairs "
                             f"like '4:128,8:64'") from None
    return result


def split_cpu(count):
    """Split the CPU into `count` logical devices (must run before TensorFlow initialises)."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def run_app(program, main):
    """`absl.app.run(main)`, except that a bad flag value is one line and exit code 2."""
    from absl import app, flags

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(program, str(e))

    app.run(main, flags_parser=parse)
