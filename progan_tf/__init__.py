"""progan_tf: Progressive Growing of GANs (Karras et al., ICLR 2018) for TensorFlow 2 / Keras 3.

Importing the package registers every custom layer with Keras (package "progan"),
so `keras.models.load_model("generator.keras")` works after `import progan_tf`.
"""
import os as _os

__version__ = "0.1.0"

# TensorFlow's C++ start-up INFO/WARNING lines bury our output; an explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Registers WeightScaledConv2D, PixelNorm, ... under the "progan" package for Keras.
from progan_tf import layers  # noqa: E402,F401
