"""The NumPy forms of the quantizers, and the log quantizer's textbook
form to measure against.

Each function takes a 1-d float32 array (and the scalars of its rule, as
:mod:`~quantized_net.quantization.kernels` passes them) and returns a new
1-d array of the same bits as the numba and CUDA forms. They need nothing
but NumPy: they run where numba does not import, and under
``QUANTIZED_NET_CPU_KERNELS=numpy``. A form is several vectorised passes
with temporaries; the numba forms fuse them into one loop.
"""
import numpy

from quantized_net.quantization.float32_layout import (
    AP2_ROUND_UP_MANTISSA, EXPONENT_MASK, EXPONENT_ONE, MAGNITUDE_MASK,
    MANTISSA_BITS, MANTISSA_MASK, SIGN_EXPONENT_MASK,
    SUBNORMAL_SCALE_EXPONENT)


def _ap2_normal_bits(bits):
    """AP2 on the bit pattern of normal, zero or infinite float32 values."""
    round_up = (bits & MANTISSA_MASK) >= AP2_ROUND_UP_MANTISSA
    return (bits & SIGN_EXPONENT_MASK) + (
        round_up.astype(numpy.uint32) << numpy.uint32(MANTISSA_BITS))


def log_quant(x, fsr, lowest, scale):
    """:func:`~quantized_net.quantization.kernels.log_quant`; a subnormal
    is scaled by 2**24 into the normal range, quantized there and scaled
    back, both steps exact."""
    bits = x.view(numpy.uint32)
    q = _ap2_normal_bits(bits).view(numpy.float32)
    magnitude = bits & MAGNITUDE_MASK
    subnormal = (magnitude != 0) & (magnitude < EXPONENT_ONE)
    if subnormal.any():
        up = numpy.float32(2.0 ** SUBNORMAL_SCALE_EXPONENT)
        down = numpy.float32(2.0 ** -SUBNORMAL_SCALE_EXPONENT)
        scaled = (x[subnormal] * up).view(numpy.uint32)
        q[subnormal] = _ap2_normal_bits(scaled).view(numpy.float32) * down
    nan = magnitude > EXPONENT_MASK
    if nan.any():
        q[nan] = x[nan]
    numpy.clip(q, numpy.float32(-fsr), numpy.float32(fsr), out=q)
    if lowest > 0:
        q[numpy.abs(q) < numpy.float32(lowest)] = 0
    if scale != 1:
        q *= numpy.float32(scale)
    return q


def log_quant_reference(x, fsr, lowest, scale):
    """:func:`~quantized_net.quantization.kernels.log_quant` as the
    textbook writes it, ``log2``, ``rint`` and ``exp2`` in float64: exact
    (float64 ``log2`` of a float32 is never within rounding of a tie) but
    slow."""
    x64 = x.astype(numpy.float64)
    with numpy.errstate(divide='ignore', over='ignore', invalid='ignore'):
        q = numpy.sign(x64) * numpy.exp2(numpy.rint(numpy.log2(
            numpy.abs(x64))))
        q = numpy.where(x64 == 0, x64, q)
        q = numpy.clip(q, -fsr, fsr)
        q = numpy.where(numpy.abs(q) < lowest, 0, q)
        q = q.astype(numpy.float32)
    if scale != 1:
        q *= numpy.float32(scale)
    return q


def _keep_nan(x, y):
    """``y`` with ``x``'s NaNs put back (rare: checked before written)."""
    nan = numpy.isnan(x)
    if nan.any():
        y[nan] = x[nan]
    return y


def sign(x):
    """:func:`~quantized_net.quantization.kernels.sign`."""
    one = numpy.float32(1)
    return _keep_nan(x, numpy.where(x >= 0, one, -one))


def linear_quant(x, m):
    """:func:`~quantized_net.quantization.kernels.linear_quant` with
    ``m = float32(2**bits - 1)``."""
    t = numpy.clip(x, numpy.float32(-1), numpy.float32(1)) * m
    j = numpy.floor(t * numpy.float32(0.5))
    j = numpy.where(t < 0, numpy.minimum(j, numpy.float32(-1)), j)
    return (j * numpy.float32(2) + numpy.float32(1)) / m


def stochastic_sign(x, u):
    """:func:`~quantized_net.quantization.kernels.stochastic_sign_of`."""
    one = numpy.float32(1)
    p = numpy.clip((x + one) * numpy.float32(0.5), numpy.float32(0), one)
    return _keep_nan(x, numpy.where(u < p, one, -one))


def straight_through_gradient(x, gy):
    """:func:`.kernels.straight_through_gradient`."""
    return numpy.where(numpy.abs(x) <= numpy.float32(1), gy,
                       numpy.float32(0))


def rectified_straight_through_gradient(x, y, gy):
    """:func:`.kernels.rectified_straight_through_gradient`: Chainer's
    ``gy * (y > 0)``, then the select."""
    with numpy.errstate(invalid='ignore'):  # an infinite gy times 0: NaN
        passed = gy * (y > 0)
    return numpy.where(numpy.abs(x) <= numpy.float32(1), passed,
                       numpy.float32(0))
