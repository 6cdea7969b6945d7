"""progan_tf: Progressive Growing of GANs (Karras et al., ICLR 2018) for TensorFlow 2 / Keras 3.

Importing the package registers every custom layer with Keras (package "progan"),
so `keras.models.load_model("generator.keras")` works after `import progan_tf`.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"

# TensorFlow's C++ start-up lines bury our output. TF_CPP_MIN_LOG_LEVEL hides most of them, but
# not the INFO lines TensorFlow 2.17+ writes through absl while it loads (oneDNN's notice, twice).
# The progan-* commands, and the worker processes they start, hide all of them unless
# TF_CPP_MIN_LOG_LEVEL=0 or --verbosity asks for INFO lines; `import progan_tf` elsewhere hides
# only what TF_CPP_MIN_LOG_LEVEL can. A level set by a parent (pytest, a script) means quiet as
# well. This must happen before TensorFlow is imported, i.e. here, before any command's own module.
_QUIET = "PROGAN_TF_QUIET"  # set by a quiet command, for its workers
_verbose = (_os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"
            or any(a.startswith(("--verbosity", "-v")) for a in _sys.argv[1:]))
_command = (_os.path.basename(_sys.argv[0]).startswith("progan-") or _sys.argv[0] == "-m"
            or _os.environ.get(_QUIET) == "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _command else "2")
if _command and not _verbose:
    _os.environ[_QUIET] = "1"


def _import_tensorflow(silence):
    """Import TensorFlow, with file descriptor 2 (C++ stderr) sent to /dev/null meanwhile if `silence`."""
    saved = _os.dup(2) if silence else None
    if silence:
        null = _os.open(_os.devnull, _os.O_WRONLY)
        _os.dup2(null, 2)
        _os.close(null)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise ImportError("progan_tf needs TensorFlow, which is an extra: pip install 'progan_tf[cpu]' "
                          "(or '[gpu]' for CUDA; from a checkout: pip install -e '.[cpu]')") from None
    finally:
        if silence:
            _os.dup2(saved, 2)
            _os.close(saved)


_import_tensorflow(silence=_command and not _verbose)

# TensorFlow's per-step tensors otherwise page-fault in afresh at every step (progan_tf/allocator.py).
from progan_tf import allocator as _allocator  # noqa: E402

_allocator.tune_malloc()

# Registers WeightScaledConv2D, PixelNorm, ... under the "progan" package for Keras.
from progan_tf import layers  # noqa: E402,F401
