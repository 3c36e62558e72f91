"""heap.py: glibc keeps what a step frees, so a step's arrays come back
without the system zeroing their pages again."""
import ctypes
import os
import subprocess
import sys

import pytest

from quantized_net.training import heap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    heap.__file__))))


def _glibc():
    try:
        return ctypes.CDLL(None).gnu_get_libc_version() is not None
    except (OSError, AttributeError):
        return False


PROBE = '''
import resource, sys
import numpy
from quantized_net.training import heap
kept = heap.keep_freed_memory() if sys.argv[1] == 'keep' else None
for _ in range(3):  # a step's arrays, freed, then allocated again
    a = numpy.ones(12 * 2 ** 20, numpy.float32)
    b = numpy.ones(2 * 2 ** 20, numpy.float32)
    del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    a = numpy.ones(12 * 2 ** 20, numpy.float32)
    b = numpy.ones(2 * 2 ** 20, numpy.float32)
    del a, b
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _malloc_set_elsewhere():
    """Whether the environment sets glibc's thresholds itself or puts
    another allocator before it."""
    return any(name == 'LD_PRELOAD' or name == 'GLIBC_TUNABLES' or
               (name.startswith('MALLOC_') and name.endswith('_'))
               for name in os.environ)


@pytest.mark.skipif(not sys.platform.startswith('linux') or not _glibc()
                    or _malloc_set_elsewhere(),
                    reason="glibc's own allocator, as it is by default, only")
def test_freed_arrays_come_back_without_page_faults():
    # 48 MiB and 8 MiB arrays, ten times: by default each 48 MiB one is a
    # fresh mapping (above glibc's 32 MiB ceiling), every page of it a
    # fault (24 pages of 2 MiB where the system backs it with huge pages,
    # 12288 of 4 KiB where not); kept, none is.
    faults = {}
    for mode in ('default', 'keep'):
        out = subprocess.run([sys.executable, '-c', PROBE, mode],
                             capture_output=True, text=True, check=True,
                             cwd=ROOT)
        kept, faults[mode] = out.stdout.split()
        faults[mode] = int(faults[mode])
    assert kept == 'True'
    assert faults['default'] >= 10 * 24
    assert faults['keep'] <= 5


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'darwin')
    assert heap.keep_freed_memory() is False
