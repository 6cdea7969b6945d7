"""The two kinds of failure a user sees: a bad option (ConfigError) and work that cannot be done (RunError).

ConfigError names options by their config field, so that each front end can name them its own way.
"""


class RunError(RuntimeError):
    """The work cannot be done as asked: no usable checkpoint, a full disk, a diverged run. One line."""


class ConfigError(ValueError):
    """One inconsistent or out-of-range option, as one line.

    `template` names options as `{field}` placeholders, e.g. "{loss}={value!r} is unknown"; `values` fills the other
    names. `str(error)` writes field names (`batch_sizes`); `error.message(lambda field: f"--{field}")` writes flags.
    """

    def __init__(self, template, **values):
        self.template, self.values = template, values
        super().__init__(self.message(lambda field: field))

    def message(self, name):
        """The message with every `{field}` written as `name(field)`."""
        return self.template.format_map(_Names(name, self.values))


class _Names(dict):
    def __init__(self, name, values):
        super().__init__(values)
        self.name = name

    def __missing__(self, field):
        return self.name(field)
