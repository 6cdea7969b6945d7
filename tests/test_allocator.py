"""progan_tf.allocator: after `import progan_tf`, freed blocks of megabytes are reused without page faults.

TensorFlow's steps allocate and free such blocks on many threads; each page that glibc gave
back to the kernel costs a fault (and a zeroed page) the next time. Counted, not timed: the
minor page faults of rounds of malloc / touch / free of 42.5 MB in blocks of 0.25-16 MB, on the main thread and on
another one (another malloc arena), in a fresh process.
"""
import os
import subprocess
import sys

import pytest

from progan_tf import allocator

_FAULTS_PER_ROUND = """
import ctypes, ctypes.util, resource, threading
import progan_tf  # noqa: F401
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
MB = 1 << 20

SIZES = [MB // 4, MB, 4 * MB, 16 * MB] * 2

def one_round():
    blocks = [libc.malloc(size) for size in SIZES]
    for block, size in zip(blocks, SIZES):
        ctypes.memset(block, 1, size)
    for block in blocks:
        libc.free(block)

def measure(out):
    one_round()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(20):
        one_round()
    out.append((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 20)

main, other = [], []
measure(main)
thread = threading.Thread(target=measure, args=(other,))
thread.start()
thread.join()
print(main[0], other[0])
"""


def faults_per_round(tune):
    env = {**os.environ, allocator.ENV: tune}
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_ROUND], env=env, capture_output=True, text=True,
                         check=True)
    return [float(word) for word in out.stdout.split()[-2:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_import_keeps_freed_megabytes_for_reuse():
    default, tuned = faults_per_round("0"), faults_per_round("1")
    assert min(default) > 2000, default  # glibc's defaults: many of the round's 10,880 pages fault again
    assert max(tuned) < 50, tuned  # measured: 0


def test_bad_environment_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(allocator.ENV, "yes")
    with pytest.raises(ValueError, match="PROGAN_TF_TUNE_MALLOC='yes' must be 1 .* or 0"):
        allocator.tune_malloc()


def test_zero_leaves_glibc_alone(monkeypatch):
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.tune_malloc() is False
