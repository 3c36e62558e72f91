"""The log quantizer's kernels: NumPy, reference, numba and CUDA forms side
by side, all giving the same bits. :func:`quantizer_kernels.log_quant`
chooses among them.

AP2, ``sign(v) 2**round(log2|v|)``, is computed from the float32 bit
pattern: ``round(log2|v|)`` rounds up exactly when the significand of
``|v|`` is at least :math:`\\sqrt 2`, so keep sign and exponent, add one to
the exponent when the 23 mantissa bits are at least ``0x3504F4`` (the first
float32 significand above :math:`\\sqrt 2`), clear the mantissa. There are
no ties: :math:`\\sqrt 2` is irrational. This is exact where ``log2``
followed by ``round`` is not: for the significand ``0x3504F3`` (1.41421354,
just below :math:`\\sqrt 2`) float32 ``log2`` returns exactly 0.5 and C's
``round`` would round it up.

Policy for special values, the same on every device:

* ``+-0`` maps to itself (value 0, sign bit kept).
* Subnormals are quantized exactly: AP2 of a subnormal is computed on the
  input scaled by :math:`2^{24}` (which makes it normal) and the result is
  scaled back, both steps exact (NumPy), or from the position of its
  leading mantissa bit (numba, CUDA).
* ``+-inf``, and a finite value whose AP2 overflows to :math:`2^{128}`,
  map to ``+-F``: AP2 keeps them infinite, the clip bounds them.
* ``NaN`` propagates.

The CUDA form uses integer operations only. CuPy compiles every kernel
with ``-ftz=true``, which turns a float32 subnormal into 0 wherever it
enters or leaves a float operation; a kernel that never does float
arithmetic cannot be changed by it.
"""
import math

import numpy
try:
    import numba
except ImportError:  # optional: the NumPy form gives the same bits
    numba = None

from quantized_net import kernel_cache


# float32 layout.
MANTISSA_BITS = 23
SIGN_MASK = 0x80000000
SIGN_EXPONENT_MASK = 0xFF800000
EXPONENT_MASK = 0x7F800000
MANTISSA_MASK = 0x007FFFFF
MAGNITUDE_MASK = 0x7FFFFFFF
EXPONENT_ONE = MANTISSA_MASK + 1  # adds one to the exponent
ONE_BITS = 0x3F800000  # 1.0f
# First float32 significand (mantissa bits) above sqrt(2): from here up,
# round(log2|v|) takes the next power of two.
AP2_ROUND_UP_MANTISSA = 0x3504F4
# Scaling a subnormal by 2**24 makes it normal; both scalings are exact.
SUBNORMAL_SCALE_EXPONENT = 24
#: The layout as the names the CUDA sources are formatted with.
CUDA_CONSTANTS = dict(
    MANTISSA_BITS=MANTISSA_BITS, SIGN_MASK=SIGN_MASK,
    EXPONENT_MASK=EXPONENT_MASK, MANTISSA_MASK=MANTISSA_MASK,
    MAGNITUDE_MASK=MAGNITUDE_MASK, EXPONENT_ONE=EXPONENT_ONE,
    ONE_BITS=ONE_BITS, AP2_ROUND_UP_MANTISSA=AP2_ROUND_UP_MANTISSA)


def float32_bits(value):
    """The bit pattern of ``float32(value)``, as an int."""
    return int(numpy.float32(value).view(numpy.uint32))


def scale_shift(scale):
    """``s`` for a scale of ``2**-s``: the one form of scale the kernels
    take, so that every device applies it exactly."""
    significand, exponent = math.frexp(scale)
    if significand != 0.5 or not 1 - 126 <= exponent <= 1:
        raise ValueError('scale must be a power of two from 2**-126 to 1, '
                         'got {!r}'.format(scale))
    return 1 - exponent


def _ap2_normal_bits(bits):
    """AP2 on the bit pattern of normal, zero or infinite float32 values."""
    round_up = (bits & MANTISSA_MASK) >= AP2_ROUND_UP_MANTISSA
    return (bits & SIGN_EXPONENT_MASK) + (
        round_up.astype(numpy.uint32) << numpy.uint32(MANTISSA_BITS))


def log_quant_numpy(x, fsr, lowest, scale):
    """The NumPy form of :func:`quantizer_kernels.log_quant` on a 1-d
    float32 array."""
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
    """The textbook form in float64: exact (float64 ``log2`` of a float32
    is never within rounding of a tie) but slow."""
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


if numba is not None:
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
    def _log_quant_numba(bits, out_bits, fsr_bits, lowest_bits):
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

    def log_quant_numba(x, fsr, lowest, scale):
        """The numba form of :func:`quantizer_kernels.log_quant` on a 1-d
        float32 array (defined where numba imports)."""
        bits = numpy.ascontiguousarray(x).view(numpy.uint32)
        out = numpy.empty(bits.size, numpy.float32)
        _log_quant_numba(bits, out.view(numpy.uint32),
                         numpy.uint32(float32_bits(fsr)),
                         numpy.uint32(float32_bits(lowest)))
        if scale != 1:
            out *= numpy.float32(scale)
        return out


#: The CUDA form: the numba kernel's rules, one element per thread, and
#: the scale ``2**-shift`` applied to the exponent, with the rounding to
#: nearest even of a float multiply where the result falls below the
#: normal range. The subnormal AP2 takes its leading bit from ``__clz``.
LOG_QUANT_CUDA = (
    'float32 x, uint32 fsr_bits, uint32 lowest_bits, int32 shift',
    'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    unsigned int q = 0u;
    if (magnitude > {MANTISSA_MASK}u) {{  // normal or infinite
        q = (magnitude & {EXPONENT_MASK}u) +
            (((magnitude & {MANTISSA_MASK}u) >= {AP2_ROUND_UP_MANTISSA}u)
             << {MANTISSA_BITS});
    }} else if (magnitude != 0u) {{  // subnormal
        const int lead = 31 - __clz(magnitude);
        const unsigned int fraction =
            (magnitude << ({MANTISSA_BITS} - lead)) & {MANTISSA_MASK}u;
        q = 1u << (lead + (fraction >= {AP2_ROUND_UP_MANTISSA}u));
    }}
    q = min(q, fsr_bits);
    unsigned int sign = bits & {SIGN_MASK}u;
    if (q < lowest_bits) {{
        q = 0u;
        sign = 0u;
    }}
    if (shift > 0 && q != 0u && q < {EXPONENT_MASK}u) {{
        const int exponent = (int)(q >> {MANTISSA_BITS});
        if (exponent > shift) {{
            q -= (unsigned int)shift << {MANTISSA_BITS};
        }} else {{  // below the normal range: shift the significand out
            const unsigned int significand =
                exponent ? (q & {MANTISSA_MASK}u) | {EXPONENT_ONE}u : q;
            const int drop = shift - (exponent ? exponent : 1) + 1;
            if (drop >= 25) {{
                q = 0u;
            }} else {{
                const unsigned int rest = significand & ((1u << drop) - 1u);
                const unsigned int half = 1u << (drop - 1);
                q = significand >> drop;
                q += rest > half || (rest == half && (q & 1u));
            }}
        }}
    }}
    y = magnitude > {EXPONENT_MASK}u ? x : __uint_as_float(sign | q);
'''.format(**CUDA_CONSTANTS))


def log_quant_cuda_arguments(fsr, lowest, scale):
    """The scalar arguments of :data:`LOG_QUANT_CUDA` after ``x``."""
    return (numpy.uint32(float32_bits(fsr)),
            numpy.uint32(float32_bits(lowest)),
            numpy.int32(scale_shift(scale)))
