"""glibc's allocator told to keep what a training step frees for the next.

A training step allocates and frees the same arrays each time, the
largest tens of megabytes (a ConvNet's columns and their products). By
default glibc maps an allocation above its threshold (which follows what
is freed, up to 32 MiB) afresh and unmaps it when it is freed, and hands
the top of its heap back to the system when more than twice the
threshold is free there. The system then zeroes each page again at its
first touch, inside the step's kernels, and how often depends on the
order of the step's allocations: a change elsewhere in a step can make
it a fifth slower (docs/speed.md). :func:`keep_freed_memory` sets both
limits high, so the process keeps its peak from step to step, as a
caching allocator does. Elsewhere than on glibc it does nothing.
"""
import ctypes
import sys

#: ``mallopt``'s parameters (``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Allocations up to this many bytes come from the heap: the first that
#: glibc takes (older versions refuse more than 32 MiB).
MMAP_THRESHOLDS = (2 ** 30, 2 ** 25)
#: Free bytes at the top of the heap before it is handed back.
TRIM_THRESHOLD = 2 ** 31 - 1


def keep_freed_memory():
    """Sets glibc's thresholds (:data:`MMAP_THRESHOLDS`,
    :data:`TRIM_THRESHOLD`) for the whole process, where its C library
    is glibc. Setting one alone disables glibc's own adjustment of the
    other, which is worse than neither: the trim threshold is set only
    once a mapping threshold was.

    Returns:
        bool: Whether both were set.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's C library
    except (OSError, AttributeError):  # not glibc (musl has none)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not any(mallopt(M_MMAP_THRESHOLD, value) for value in
               MMAP_THRESHOLDS):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
