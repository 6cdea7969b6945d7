"""glibc's malloc, set for the way TensorFlow allocates.

TensorFlow's CPU kernels allocate and free tensors of megabytes on many threads at every step. With glibc's defaults,
most of that memory goes back to the kernel when it is freed (the free top of a thread arena's heap beyond 128 KB, and
blocks above the mmap threshold), so the next step page-faults every 4 KB page of it in again and the kernel zeroes each
one. On a 2-vCPU KVM guest (AMD EPYC) a third of the demo's CPU time went to the kernel that way. `tune_malloc` keeps up
to 64 MB free at the top of each heap (the size of a whole thread-arena heap) and serves blocks up to 32 MB from the
heaps. Setting either turns off glibc's adaptive mmap threshold, so both are set. Measured in benchmarks/RESULTS.md
("The allocator"): about 50 MB more resident memory, steps up to 2.8x faster on that machine.
"""
import ctypes
import ctypes.util
import os

# mallopt parameters (malloc.h) and the values set.
M_TOP_PAD, M_MMAP_THRESHOLD = -2, -3
SETTINGS = ((M_TOP_PAD, 64 << 20), (M_MMAP_THRESHOLD, 32 << 20))  # 32 MB: glibc's largest mmap threshold
ENV = "PROGAN_TF_TUNE_MALLOC"  # "0" leaves glibc's defaults


def tune_malloc():
    """Apply SETTINGS to this process's glibc malloc, unless $PROGAN_TF_TUNE_MALLOC is "0"; True if glibc took them."""
    value = os.environ.get(ENV, "1")
    if value not in ("0", "1"):
        raise ValueError(f"{ENV}={value!r} must be 1 (tune glibc's malloc, the default) or 0 (leave it alone)")
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None  # glibc only (not musl, macOS)
    if value == "0" or mallopt is None:
        return False
    return all([mallopt(parameter, size) == 1 for parameter, size in SETTINGS])
