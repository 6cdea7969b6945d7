"""Runs progan_tf.benchmark.onednn_log (see its docstring): `python benchmarks/onednn_log.py --help`."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from progan_tf.benchmark.onednn_log import main  # noqa: E402

if __name__ == "__main__":
    main()
