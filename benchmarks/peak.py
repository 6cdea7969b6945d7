"""Runs progan_tf.benchmark.peak (see its docstring): `python benchmarks/peak.py --help`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from progan_tf.benchmark.peak import main  # noqa: E402

if __name__ == "__main__":
    main()
