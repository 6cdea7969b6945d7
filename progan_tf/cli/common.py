"""What every progan-* command shares: flags made from config fields, --help, errors as one line.

Exit codes: 0 done, 1 the work failed (an unusable run, a full disk, a busy port), 2 bad input
(a flag, a file that is not what it should be), each with one line on stderr and no traceback.
"""
import dataclasses
import logging as pylogging
import os
import re
import sys
import textwrap
import typing

from absl import app, flags, logging

from progan_tf.errors import ConfigError, RunError  # noqa: F401 (RunError: for the commands)
from progan_tf.training import distribute

_GROUPS = {}  # flag name -> help group, in definition order


class UsageError(ValueError):
    """Bad command-line input: reported as one line with exit code 2."""


def fail(program, message, code=2):
    """Print `program: error: message` to stderr and exit with `code`."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(code)


def attribute_help(cls):
    """{field: help} from the "Attributes:" section of a dataclass docstring."""
    text = cls.__doc__.split("Attributes:", 1)[1]
    helps, name = {}, None
    for line in textwrap.dedent(text).splitlines():
        match = re.match(r"(\w+): (.*)", line)
        if match:
            name, helps[match[1]] = match[1], match[2]
        elif name and line.strip():
            helps[name] += " " + line.strip()
    return helps


def define(group, kind, name, default, help_text, **kwargs):
    """flags.DEFINE_<kind>(name, default, help_text) in a --help group."""
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text, **kwargs)
    _GROUPS[name] = group


_KINDS = {int: "integer", float: "float", bool: "boolean", str: "string", tuple: "list"}


def define_config_flags(cls, group, skip=(), defaults=None):
    """One flag per field of the config dataclass `cls`, with its default and its docstring's help, in --help `group`.

    `skip`: fields that get no flag (the command sets them another way); `defaults`: field -> default shown instead of
    the dataclass's.
    """
    helps, defaults = attribute_help(cls), defaults or {}
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = _KINDS[typing.get_origin(field.type) or field.type]
        default = defaults.get(field.name, field.default)
        define(group, kind, field.name, list(default) if kind == "list" else default, helps[field.name])


def config_values(cls, values, skip=()):
    """{field: flag value} of every field of `cls` with a flag of the same name."""
    return {f.name: values[f.name].value for f in dataclasses.fields(cls) if f.name not in skip}


def check_at_least(f, low, *names):
    """UsageError naming the first of the flags `names` whose value is below `low`."""
    for name in names:
        if getattr(f, name) < low:
            raise UsageError(f"--{name}={getattr(f, name)} must be >= {low}")


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


def print_help(program, doc):
    """The command's docstring and its own flags by group, with defaults (--helpfull: every flag)."""
    print(doc.strip(), end="\n\n")
    by_group = {}
    for name, group in _GROUPS.items():
        by_group.setdefault(group, []).append(flags.FLAGS[name])
    for group, group_flags in by_group.items():
        print(f"{group}:")
        for flag in group_flags:
            default = flag.default_as_str if flag.default not in (None, "") else "none"
            print(textwrap.fill(f"--{flag.name}: {flag.help} (default: {default})", 100, initial_indent="  ",
                                subsequent_indent="      "))
        print()
    print(f"Every flag, TensorFlow's and absl's too: {program} --helpfull")


def run_app(program, doc, main):
    """Run `main(flags.FLAGS)` as the command `program`, with the conventions of every progan-* command.

    --help prints `doc` and the command's own flags and exits 0. Flags that do not parse,
    UsageError and ConfigError exit 2; RunError exits 1; each is one line on stderr.
    """
    if any(arg in ("--help", "-h", "-?", "--helpshort") for arg in sys.argv[1:]):
        try:
            print_help(program, doc)
        except BrokenPipeError:  # `progan-train --help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    # Each progress line as it happens, also into a pipe (`| tee train.log`), not in blocks of 8 KB.
    sys.stdout.reconfigure(line_buffering=True)

    def parse(argv):
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as e:
            fail(program, str(e))
        if len(rest) > 1:
            fail(program, f"unexpected arguments {rest[1:]}; every option is a --flag")
        return rest

    def run(argv):
        if not flags.FLAGS["verbosity"].present:  # TensorFlow's Python INFO lines (SavedModel writing ...)
            logging.set_verbosity(logging.ERROR)
            pylogging.getLogger("tensorflow").setLevel(pylogging.ERROR)
        try:
            main(flags.FLAGS)
            if distribute.is_multi_worker():
                # A MultiWorkerMirroredStrategy process can abort in the interpreter's teardown after it has finished
                # ('terminate called after throwing ...', exit -6): TensorFlow's gRPC and health-check threads outlive
                # it. Everything is written by now, so skip the teardown.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        except ConfigError as e:
            fail(program, e.message(lambda field: f"--{field}"))
        except (UsageError, ValueError, FileExistsError) as e:  # ValueError: a file that is not what it should be
            fail(program, str(e))
        except RunError as e:
            fail(program, str(e), code=1)
        except OSError as e:  # a full disk, a read-only directory, a busy port
            fail(program, f"{e.strerror or e}{': ' + e.filename if getattr(e, 'filename', None) else ''}", code=1)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as e:  # TensorFlow's file writers raise their own errors for a full or read-only disk
            line = disk_error(e)
            if line is None:
                raise
            fail(program, line, code=1)

    app.run(run, flags_parser=parse)


_DISK_ERRORS = ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded")


def disk_error(error):
    """One line for a TensorFlow write that failed for lack of space or permission, else None."""
    if not type(error).__module__.startswith("tensorflow"):
        return None
    text = str(getattr(error, "message", error))
    reason = next((r for r in _DISK_ERRORS if r in text), None)
    if reason is None:
        return None
    path = next((word.rstrip(";:,") for word in text.split() if word.startswith("/")), "a file")
    return (f"cannot write {path}: {reason}; free some space (or fix the permissions) and run the same command "
            f"again: what was written before is intact")
