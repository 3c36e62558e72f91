"""The quantizers alone: how fast each set of kernels quantizes a matrix,
the second table of ``bench.py``."""
import numpy

from quantized_net.benchmarks import timing
from quantized_net.quantization import kernels as quantization_kernels
from quantized_net.quantization import quantizers

#: The quantizers timed: the original's, binarization, and the smallest
#: linear and log ones.
SPECS = ('seed', 'sign', 'linear:2', 'log:4')
SHAPE = (1000, 1000)


def kernel_sets(xp):
    """The kernels the quantizers can run on with ``xp``: every usable set
    of CPU forms for NumPy, ``'cupy'`` for CuPy."""
    if xp is numpy:
        return list(quantization_kernels.usable_cpu_kernels())
    return ['cupy']


def quantizer_rates(xp, synchronize, rounds=20, specs=SPECS):
    """Times each quantizer with each of :func:`kernel_sets` on a
    :data:`SHAPE` float32 matrix of small values (weights' and gradients'
    scale).

    Each is called once untimed, then ``rounds`` times
    (:func:`~quantized_net.benchmarks.timing.median_seconds`) with its
    kernels in use.

    Returns:
        list: ``(spec, kernels, ms, elements / s)`` for each spec, then
        each kernel set, in order; ms is the median of one call.
    """
    x = xp.asarray(numpy.random.RandomState(1).randn(*SHAPE).astype(
        numpy.float32) * numpy.float32(0.05))
    rows = []
    for spec in specs:
        quantizer = quantizers.parse(spec)
        for kernels in kernel_sets(xp):
            with quantization_kernels.using_cpu_kernels(
                    kernels if xp is numpy else
                    quantization_kernels.cpu_kernels()):
                seconds = timing.median_seconds(
                    [(spec, lambda: quantizer(x))], rounds, warmup=1,
                    synchronize=synchronize)[spec]
            rows.append((spec, kernels, 1000 * seconds, x.size / seconds))
    return rows
