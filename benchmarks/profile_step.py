"""Runs progan_tf.benchmark.profile (see its docstring): `python benchmarks/profile_step.py --help`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from progan_tf.benchmark.profile import main  # noqa: E402

if __name__ == "__main__":
    main()
