"""Runs progan_tf.benchmark.throughput (see its docstring): `python benchmarks/throughput.py --help`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from progan_tf.benchmark.throughput import main  # noqa: E402

if __name__ == "__main__":
    main()
