"""The numba forms: one fused loop for each of the log quantizer,
:func:`sign`, :func:`linear_quant`, :func:`straight_through_gradient` and
:func:`rectified_straight_through_gradient`, the default on the CPU.

Each wrapper takes a 1-d float32 array, as the NumPy forms do, and
returns a new 1-d array of their bits; the other array functions have
NumPy forms only. The forms are defined where numba imports
(:data:`AVAILABLE`). The loops are compiled once and cached
(:mod:`quantized_net.kernel_cache`), and run on one thread: numba's
parallel loops, called between OpenBLAS's matrix products, fight its
spinning threads for the cores.

The CUDA forms (:mod:`~quantized_net.quantization.cuda_forms`) state the
same rules, in the same order; where they differ, it is for ``-ftz=true``.
"""
import numpy

from quantized_net import kernel_cache
from quantized_net.quantization.float32_layout import (
    AP2_ROUND_UP_MANTISSA, EXPONENT_MASK, MAGNITUDE_MASK,
    MANTISSA_BITS, MANTISSA_MASK, SIGN_MASK, float32_bits)

numba = kernel_cache.numba  # optional: the NumPy forms give the same bits
#: Whether numba imports, and so whether the forms below are defined.
AVAILABLE = kernel_cache.HAVE_NUMBA


def _flat(loop, x, *args):
    """``loop(x, out, *args)`` into a new ``out``, ``x`` made contiguous."""
    x = numpy.ascontiguousarray(x)
    out = numpy.empty_like(x)
    loop(x, out, *args)
    return out


if AVAILABLE:
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    _U32 = numpy.uint32

    @intrinsic
    def _leading_zeros(typingctx, value):
        """The leading zero bits of a uint32, 32 for 0."""
        if value != types.uint32:
            return None

        def codegen(context, builder, signature, args):
            return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))
        return types.uint32(types.uint32), codegen

    @kernel_cache.njit
    def _log_bits(b, fsr_bits, lowest_bits):
        """The log quantizer of the float32 bit pattern ``b``: AP2 by the
        exact rule, clipped to ``fsr``, 0 below ``lowest`` (both compared
        as magnitude bits, which order like the values). A normal value's
        power of two is its exponent, one up where its mantissa is at
        least sqrt(2)'s; a subnormal's is its leading bit, one up where
        the bits after it are.

        uint32 arithmetic without branches, so a loop of it vectorises
        (and random mantissas cannot defeat the branch predictor); each
        result is cast back to uint32, as numba widens integers to 64
        bits, and vectors of them hold half as many lanes."""
        magnitude = _U32(b & _U32(MAGNITUDE_MASK))
        up = _U32((magnitude & _U32(MANTISSA_MASK)) >= _U32(
            AP2_ROUND_UP_MANTISSA))
        normal = _U32(_U32(magnitude & _U32(EXPONENT_MASK)) +
                      _U32(up << _U32(MANTISSA_BITS)))
        # Of a subnormal, lead is its leading bit's place (0 to 22); the
        # shifts are masked to 0-31, so 0 (lead -1) shifts by something.
        lead = _U32(_U32(31) - _leading_zeros(magnitude))
        fraction = _U32(_U32(magnitude << _U32(
            _U32(_U32(MANTISSA_BITS) - lead) & _U32(31))) & _U32(
                MANTISSA_MASK))
        subnormal = _U32(_U32(1) << _U32(_U32(lead + _U32(
            fraction >= _U32(AP2_ROUND_UP_MANTISSA))) & _U32(31)))
        # magnitude - 1 wraps for 0: true for 1 .. MANTISSA_MASK only.
        is_subnormal = _U32(magnitude - _U32(1)) < _U32(MANTISSA_MASK)
        q = subnormal if is_subnormal else normal
        q = q if q < fsr_bits else fsr_bits
        result = _U32(_U32(b & _U32(SIGN_MASK)) | q) if q >= lowest_bits \
            else _U32(0)
        # NaN propagates.
        return b if magnitude > _U32(EXPONENT_MASK) else result

    @kernel_cache.njit
    def _log_quant_loop(bits, out_bits, fsr_bits, lowest_bits):
        for i in range(bits.size):
            out_bits[i] = _log_bits(bits[i], fsr_bits, lowest_bits)

    def log_quant(x, fsr, lowest, scale):
        """:func:`~quantized_net.quantization.kernels.log_quant`."""
        x = numpy.ascontiguousarray(x)
        out = numpy.empty_like(x)
        _log_quant_loop(x.view(numpy.uint32), out.view(numpy.uint32),
                        numpy.uint32(float32_bits(fsr)),
                        numpy.uint32(float32_bits(lowest)))
        if scale != 1:
            out *= numpy.float32(scale)
        return out

    @kernel_cache.njit
    def _sign_loop(x, out):
        one = numpy.float32(1)
        for i in range(x.size):
            v = x[i]
            s = one if v >= 0 else -one
            if v != v:  # NaN propagates (rare)
                s = v
            out[i] = s

    def sign(x):
        """:func:`~quantized_net.quantization.kernels.sign`."""
        return _flat(_sign_loop, x)

    @kernel_cache.njit
    def _linear_quant_loop(x, out, m):
        one = numpy.float32(1)
        for i in range(x.size):
            v = x[i]
            if v != v:
                out[i] = v
                continue
            t = min(max(v, -one), one) * m
            j = numpy.float32(numpy.floor(t * numpy.float32(0.5)))
            if t < 0 and j > -one:
                j = -one
            out[i] = (j * numpy.float32(2) + one) / m

    def linear_quant(x, m):
        """:func:`~quantized_net.quantization.kernels.linear_quant` with
        ``m = float32(2**bits - 1)``: the NumPy form's float32 operations,
        fused."""
        return _flat(_linear_quant_loop, x, m)

    @kernel_cache.njit
    def _straight_through_loop(x, out, gy):
        one, zero = numpy.float32(1), numpy.float32(0)
        for i in range(x.size):
            out[i] = gy[i] if abs(x[i]) <= one else zero

    def straight_through_gradient(x, gy):
        """:func:`~quantized_net.quantization.kernels.straight_through_gradient`:
        the NumPy form's mask and select in one pass, without the mask's
        array or the zeros'."""
        return _flat(_straight_through_loop, x, numpy.ascontiguousarray(gy))

    @kernel_cache.njit
    def _rectified_straight_through_loop(x, out, y, gy):
        one, zero = numpy.float32(1), numpy.float32(0)
        for i in range(x.size):
            out[i] = (gy[i] * (one if y[i] > 0 else zero)
                      if abs(x[i]) <= one else zero)

    def rectified_straight_through_gradient(x, y, gy):
        """:func:`~quantized_net.quantization.kernels.\
rectified_straight_through_gradient`: the NumPy form's product and
        select in one pass."""
        return _flat(_rectified_straight_through_loop, x,
                     numpy.ascontiguousarray(y), numpy.ascontiguousarray(gy))
