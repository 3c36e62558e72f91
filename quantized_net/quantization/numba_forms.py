"""The numba forms: one fused loop for each of the log quantizer,
:func:`sign`, :func:`linear_quant` and :func:`straight_through_gradient`,
the default on the CPU.

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
    AP2_ROUND_UP_MANTISSA, EXPONENT_MASK, EXPONENT_ONE, MAGNITUDE_MASK,
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
    _U32 = numpy.uint32

    @kernel_cache.njit
    def _ap2_subnormal_bits(magnitude):
        """AP2 of a subnormal's magnitude bits, from its leading bit."""
        lead = 0
        rest = magnitude >> 1
        while rest:
            lead += 1
            rest >>= 1
        fraction = (magnitude << (MANTISSA_BITS - lead)) & MANTISSA_MASK
        return _U32(1 << (lead + (fraction >= AP2_ROUND_UP_MANTISSA)))

    @kernel_cache.njit
    def _clip_flush(b, q, fsr_bits, lowest_bits):
        q = min(q, fsr_bits)
        return ((b & _U32(SIGN_MASK)) | q) * _U32(q >= lowest_bits)

    @kernel_cache.njit
    def _is_subnormal(b):
        # magnitude - 1 wraps for 0: true for 1 .. MANTISSA_MASK only.
        return ((b & _U32(MAGNITUDE_MASK)) - _U32(1)) < _U32(MANTISSA_MASK)

    @kernel_cache.njit
    def _log_quant_loop(bits, out_bits, fsr_bits, lowest_bits):
        """One pass over the float32 bit patterns ``bits``: AP2 by the
        exact rule, clip to ``fsr``, 0 below ``lowest`` (both compared as
        magnitude bits, which order like the values). The loop is uint32
        arithmetic without branches, so it vectorises (and random mantissas
        cannot defeat the branch predictor); subnormals, rare, are found by
        a second vectorised loop and redone one by one."""
        for i in range(bits.size):
            b = bits[i]
            magnitude = b & _U32(MAGNITUDE_MASK)
            q = (magnitude & _U32(EXPONENT_MASK)) + _U32(EXPONENT_ONE) * _U32(
                (magnitude & _U32(MANTISSA_MASK)) >= _U32(
                    AP2_ROUND_UP_MANTISSA))
            result = _clip_flush(b, q, fsr_bits, lowest_bits)
            # NaN propagates.
            out_bits[i] = b if magnitude > _U32(EXPONENT_MASK) else result
        any_subnormal = _U32(0)
        for i in range(bits.size):
            any_subnormal |= _U32(_is_subnormal(bits[i]))
        if any_subnormal:
            for i in range(bits.size):
                if _is_subnormal(bits[i]):
                    out_bits[i] = _clip_flush(
                        bits[i],
                        _ap2_subnormal_bits(bits[i] & _U32(MAGNITUDE_MASK)),
                        fsr_bits, lowest_bits)

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
