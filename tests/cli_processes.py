"""The console scripts as subprocesses, and the tiny export they read, for the tests of cli/."""
import os
import subprocess
import sys

from progan_tf import export
from test_export import TINY, tiny_generator

NO_PROXY_ENV = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(tool, *flags, cwd=None):
    return subprocess.Popen([sys.executable, "-m", f"progan_tf.cli.{tool}", *flags], cwd=cwd, env=NO_PROXY_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process, timeout=180):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def tiny_export(root):
    """The 16x16 generator of seed 3, exported as version 1 of `root`/models/tiny (5000 images seen).

    Returns:
      (the generator, the export's base directory).
    """
    gs = tiny_generator(seed=3)
    base = root / "models" / "tiny"
    export.export_generator(gs, TINY, base / "1", {"images_seen": 5000})
    return gs, base
