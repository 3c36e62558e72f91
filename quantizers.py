"""The quantizer formulas of quantized_net, for NumPy and CuPy arrays.

Everything here works on ``float32`` arrays and returns ``float32`` arrays of
the same shape. The CPU (NumPy) and GPU (CuPy) versions are written next to
each other from the same constants, and the tests check they agree bit for
bit.

The log quantizer (``AP2``, "approximate power of two") of the original suite
is

.. math::

    \\mathrm{AP2}(v) = \\mathrm{sign}(v)\\, 2^{\\mathrm{round}(\\log_2 |v|)},
    \\qquad
    \\mathrm{LogQuant}(v, F) = \\begin{cases}
        0 & v = 0 \\\\
        \\mathrm{clip}(\\mathrm{AP2}(v), -F, F) & \\text{otherwise.}
    \\end{cases}

``round(log2 |v|)`` rounds up exactly when the significand of ``|v|`` is at
least :math:`\\sqrt 2`, so AP2 is computed from the float32 bit pattern: keep
sign and exponent, add one to the exponent when the 23 mantissa bits are at
least ``0x3504F4`` (the first float32 significand above :math:`\\sqrt 2`),
clear the mantissa. There are no ties: :math:`\\sqrt 2` is irrational. This
is exact where ``log2`` followed by ``round`` is not: for the significand
``0x3504F3`` (1.41421354, just below :math:`\\sqrt 2`) float32 ``log2``
returns exactly 0.5 and C's ``round`` would round it up.

Policy for special values, the same on both devices:

* ``+-0`` maps to itself (value 0, sign bit kept).
* Subnormals are quantized exactly: AP2 of a subnormal is computed on the
  input scaled by :math:`2^{24}` (which makes it normal) and the result is
  scaled back, both steps exact.
* ``+-inf`` maps to ``+-F`` (AP2 keeps it infinite, the clip bounds it).
* A finite value whose AP2 is :math:`2^{128}` overflows to ``inf`` and is
  clipped to ``F`` likewise.
* ``NaN`` propagates.
"""
import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
from chainer.backends import cuda


# float32 layout.
SIGN_EXPONENT_MASK = 0xFF800000
EXPONENT_MASK = 0x7F800000
MANTISSA_MASK = 0x007FFFFF
MAGNITUDE_MASK = 0x7FFFFFFF
# First float32 significand (mantissa bits) above sqrt(2): from here up,
# round(log2|v|) takes the next power of two.
AP2_ROUND_UP_MANTISSA = 0x3504F4
# Scaling a subnormal by 2**24 makes it normal; both scalings are exact.
SUBNORMAL_SCALE_EXPONENT = 24

#: The original's fixed scale and full-scale range: it quantized ``64 * v``
#: with ``F = 64``. Since AP2 commutes with a power-of-two scale,
#: ``LogQuant(64 v, 64) / 64 == LogQuant(v, 1)``.
SEED_SCALE = 64.0


def _check_float32(x):
    if x.dtype != numpy.float32:  # the bit rule is float32's
        raise TypeError(
            'quantizers work on float32 arrays, got {}'.format(x.dtype))


def _ap2_normal_bits(bits):
    """AP2 on the bit pattern of normal, zero or infinite float32 values."""
    round_up = (bits & MANTISSA_MASK) >= AP2_ROUND_UP_MANTISSA
    return (bits & SIGN_EXPONENT_MASK) + (
        round_up.astype(numpy.uint32) << numpy.uint32(23))


def _log_quant_cpu(x, fsr):
    bits = x.view(numpy.uint32)
    q = _ap2_normal_bits(bits).view(numpy.float32)
    magnitude = bits & MAGNITUDE_MASK
    subnormal = (magnitude != 0) & (magnitude < (MANTISSA_MASK + 1))
    if subnormal.any():
        up = numpy.float32(2.0 ** SUBNORMAL_SCALE_EXPONENT)
        down = numpy.float32(2.0 ** -SUBNORMAL_SCALE_EXPONENT)
        scaled = (x[subnormal] * up).view(numpy.uint32)
        q[subnormal] = _ap2_normal_bits(scaled).view(numpy.float32) * down
    nan = magnitude > EXPONENT_MASK
    if nan.any():
        q[nan] = x[nan]
    return numpy.clip(q, numpy.float32(-fsr), numpy.float32(fsr), out=q)


_LOG_QUANT_CUDA = '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    if (magnitude > {EXPONENT_MASK}u) {{
        y = x;  // NaN propagates
    }} else {{
        unsigned int b = bits;
        float back = 1.0f;
        if (magnitude != 0u && magnitude <= {MANTISSA_MASK}u) {{
            b = __float_as_uint(x * {up}f);  // subnormal: exact rescale
            back = {down}f;
        }}
        const unsigned int round_up =
            (b & {MANTISSA_MASK}u) >= {AP2_ROUND_UP_MANTISSA}u;
        const float q =
            __uint_as_float((b & {SIGN_EXPONENT_MASK}u) + (round_up << 23))
            * back;
        y = fminf(fmaxf(q, -fsr), fsr);
    }}
'''.format(
    MAGNITUDE_MASK=MAGNITUDE_MASK, EXPONENT_MASK=EXPONENT_MASK,
    MANTISSA_MASK=MANTISSA_MASK, SIGN_EXPONENT_MASK=SIGN_EXPONENT_MASK,
    AP2_ROUND_UP_MANTISSA=AP2_ROUND_UP_MANTISSA,
    up=repr(2.0 ** SUBNORMAL_SCALE_EXPONENT),
    down=repr(2.0 ** -SUBNORMAL_SCALE_EXPONENT))


def _log_quant_gpu(x, fsr):
    kernel = cuda.elementwise(
        'float32 x, float32 fsr', 'float32 y', _LOG_QUANT_CUDA,
        'quantized_net_log_quant')
    return kernel(x, numpy.float32(fsr))


def log_quant(x, fsr):
    """Logarithmic quantization with full-scale range ``fsr``.

    .. math::

        y = \\mathrm{clip}(\\mathrm{sign}(x)\\,
                2^{\\mathrm{round}(\\log_2 |x|)}, -F, F),
        \\qquad 0 \\mapsto 0

    There is no lower bound: small magnitudes stay small powers of two.

    Args:
        x (numpy.ndarray or cupy.ndarray): float32 input.
        fsr (float): Full-scale range ``F > 0`` (``inf`` for plain AP2).

    Returns:
        numpy.ndarray or cupy.ndarray: A new float32 array of ``x``'s shape
        and device, each element zero, a signed power of two, ``+-F`` or
        NaN.
    """
    if not fsr > 0:
        raise ValueError('fsr must be positive, got {}'.format(fsr))
    if isinstance(x, cuda.ndarray):
        _check_float32(x)
        return _log_quant_gpu(x, fsr)
    x = numpy.asarray(x)
    _check_float32(x)
    # 1-d: NumPy turns 0-d results into scalars, which have no out=.
    return _log_quant_cpu(x.reshape(-1), fsr).reshape(x.shape)


def ap2(x):
    """Approximate power of two, ``sign(x) * 2**round(log2|x|)``, 0 -> 0."""
    return log_quant(x, numpy.inf)


def seed_quant(x):
    """The original suite's quantizer, ``LogQuant(64 x, 64) / 64``.

    Equal to ``log_quant(x, 1)``: signed powers of two up to 1 in
    magnitude, unbounded below. The original applied it (as
    ``LogQuant(64 v, 64)``, with a ``1/4096`` after the product) to weights,
    inputs and output gradients of every linear layer.
    """
    return log_quant(x, 1.0)
