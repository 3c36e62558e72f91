"""benchmarks/quantizer_speed.py: every quantizer timed with every kernel
set, each under its own kernels."""
import types

import numpy
import pytest

from quantized_net.benchmarks import quantizer_speed
from quantized_net.quantization import kernels, quantizers

#: Seconds a fake quantizer takes with each kernel set.
SECONDS = {'numba': 0.001, 'numpy': 0.004, 'reference': 0.016,
           'cupy': 0.0005}


@pytest.fixture
def fake_quantizers(fake_clock, monkeypatch):
    """Quantizers that take :data:`SECONDS` of the fake clock with the
    kernels in use (``'cupy'`` for a CuPy-like array); a log of
    ``(spec, kernels)`` of every call."""
    calls = []

    def parse(spec):
        def quantize(x):
            used = kernels.cpu_kernels() if isinstance(
                x, numpy.ndarray) else 'cupy'
            calls.append((spec, used))
            assert x.shape == quantizer_speed.SHAPE
            fake_clock.advance(SECONDS[used])
        return quantize
    monkeypatch.setattr(quantizers, 'parse', parse)
    return calls


def test_each_quantizer_with_each_cpu_kernel_set(fake_quantizers):
    before = kernels.cpu_kernels()
    rows = quantizer_speed.quantizer_rates(numpy, lambda: None, rounds=3)
    usable = kernels.usable_cpu_kernels()
    pairs = [(spec, name) for spec in quantizer_speed.SPECS
             for name in usable]
    assert [row[:2] for row in rows] == pairs
    for spec, name, ms, rate in rows:
        assert ms == pytest.approx(1000 * SECONDS[name])
        assert rate == pytest.approx(1e6 / SECONDS[name])
    # An untimed call and three timed ones, each with its kernels.
    assert fake_quantizers == [pair for pair in pairs for _ in range(4)]
    assert kernels.cpu_kernels() == before


class CupyLike(object):
    """A module with CuPy's ``asarray`` giving arrays that are not NumPy's,
    as CuPy's are not."""

    @staticmethod
    def asarray(x):
        return types.SimpleNamespace(shape=x.shape, size=x.size)


def test_on_the_gpu_the_cupy_kernels_between_synchronizations(
        fake_quantizers):
    synchronized = []
    rows = quantizer_speed.quantizer_rates(
        CupyLike, lambda: synchronized.append(len(fake_quantizers)),
        rounds=2, specs=('sign',))
    assert rows == [('sign', 'cupy', pytest.approx(0.5),
                     pytest.approx(2e9))]
    # One untimed call, then each timed one between two synchronizations.
    assert synchronized == [1, 2, 2, 3]
