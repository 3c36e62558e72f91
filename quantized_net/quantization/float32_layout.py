"""The float32 bit layout every form of the quantizers decides on.

The quantizers work on the bit pattern of a float32, not on its value,
for two reasons. AP2, ``sign(v) 2**round(log2|v|)``, is exact from the
bits: ``round(log2|v|)`` rounds up exactly when the significand of
``|v|`` is at least :math:`\\sqrt 2`, that is when the 23 mantissa bits are
at least :data:`AP2_ROUND_UP_MANTISSA`; there are no ties, as
:math:`\\sqrt 2` is irrational. ``log2`` followed by ``round`` is not
exact: for the significand ``0x3504F3`` (1.41421354, just below
:math:`\\sqrt 2`) float32 ``log2`` returns exactly 0.5, which C's ``round``
rounds up. And CuPy compiles every kernel with ``-ftz=true``, which turns
a subnormal into 0 wherever it enters or leaves a float operation: a
decision taken on the bits with integer operations cannot be changed by
it.

The NumPy, numba and CUDA forms all take their constants from here; the
CUDA sources are formatted with :data:`CUDA_CONSTANTS`.
"""
import math

import numpy

MANTISSA_BITS = 23
SIGN_MASK = 0x80000000
SIGN_EXPONENT_MASK = 0xFF800000
EXPONENT_MASK = 0x7F800000
MANTISSA_MASK = 0x007FFFFF
MAGNITUDE_MASK = 0x7FFFFFFF
#: Added to a pattern, doubles its value (one more in the exponent).
EXPONENT_ONE = MANTISSA_MASK + 1
ONE_BITS = 0x3F800000  # 1.0f
#: The first float32 significand (mantissa bits) above sqrt(2): from here
#: up, round(log2|v|) takes the next power of two.
AP2_ROUND_UP_MANTISSA = 0x3504F4
#: Scaling a subnormal by 2**24 makes it normal; both scalings are exact.
SUBNORMAL_SCALE_EXPONENT = 24
#: The layout under the names the CUDA sources are formatted with.
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
    take, so that every device applies it exactly.

    Raises:
        ValueError: ``scale`` is not a power of two from 2**-126 to 1.
    """
    significand, exponent = math.frexp(scale)
    if significand != 0.5 or not 1 - 126 <= exponent <= 1:
        raise ValueError('scale must be a power of two from 2**-126 to 1, '
                         'got {!r}'.format(scale))
    return 1 - exponent
