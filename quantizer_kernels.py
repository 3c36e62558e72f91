"""The array functions behind the quantizers, and their kernels.

:func:`log_quant` (and :func:`ap2`), :func:`sign`, :func:`linear_quant` and
:func:`stochastic_sign` take a ``float32`` NumPy or CuPy array and return a
new ``float32`` array of its shape and device. Each has a CUDA form and CPU
forms chosen by :func:`use_cpu_kernels`; all give the same bits, which the
tests check. :mod:`quantizers` names them by spec.

AP2, ``sign(v) 2**round(log2|v|)``, is computed from the float32 bit
pattern: ``round(log2|v|)`` rounds up exactly when the significand of
``|v|`` is at least :math:`\\sqrt 2`, so keep sign and exponent, add one to
the exponent when the 23 mantissa bits are at least ``0x3504F4`` (the first
float32 significand above :math:`\\sqrt 2`), clear the mantissa. There are
no ties: :math:`\\sqrt 2` is irrational. This is exact where ``log2``
followed by ``round`` is not: for the significand ``0x3504F3`` (1.41421354,
just below :math:`\\sqrt 2`) float32 ``log2`` returns exactly 0.5 and C's
``round`` would round it up.

Policy for special values, the same on both devices:

* ``+-0`` maps to itself (value 0, sign bit kept).
* Subnormals are quantized exactly: AP2 of a subnormal is computed on the
  input scaled by :math:`2^{24}` (which makes it normal) and the result is
  scaled back, both steps exact (NumPy, CUDA), or from the position of its
  leading mantissa bit (numba).
* ``+-inf``, and a finite value whose AP2 overflows to :math:`2^{128}`,
  map to ``+-F``: AP2 keeps them infinite, the clip bounds them.
* ``NaN`` propagates.
"""
import os
import warnings

import numpy
try:
    import numba
except ImportError:  # optional: the NumPy kernels give the same bits
    numba = None

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
from chainer import backend
from chainer.backends import cuda


# float32 layout.
MANTISSA_BITS = 23
SIGN_MASK = 0x80000000
SIGN_EXPONENT_MASK = 0xFF800000
EXPONENT_MASK = 0x7F800000
MANTISSA_MASK = 0x007FFFFF
MAGNITUDE_MASK = 0x7FFFFFFF
EXPONENT_ONE = MANTISSA_MASK + 1  # adds one to the exponent
# First float32 significand (mantissa bits) above sqrt(2): from here up,
# round(log2|v|) takes the next power of two.
AP2_ROUND_UP_MANTISSA = 0x3504F4
# Scaling a subnormal by 2**24 makes it normal; both scalings are exact.
SUBNORMAL_SCALE_EXPONENT = 24


def _ap2_normal_bits(bits):
    """AP2 on the bit pattern of normal, zero or infinite float32 values."""
    round_up = (bits & MANTISSA_MASK) >= AP2_ROUND_UP_MANTISSA
    return (bits & SIGN_EXPONENT_MASK) + (
        round_up.astype(numpy.uint32) << numpy.uint32(MANTISSA_BITS))


def _log_quant_numpy(x, fsr, lowest, scale):
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


def _log_quant_reference(x, fsr, lowest, scale):
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


def _float32_bits(value):
    return int(numpy.float32(value).view(numpy.uint32))


if numba is not None:
    _U32 = numpy.uint32

    @numba.njit(cache=True)
    def _ap2_subnormal_bits(magnitude):
        """AP2 of a subnormal's magnitude bits, from its leading bit."""
        lead = 0
        rest = magnitude >> 1
        while rest:
            lead += 1
            rest >>= 1
        fraction = (magnitude << (MANTISSA_BITS - lead)) & MANTISSA_MASK
        return _U32(1 << (lead + (fraction >= AP2_ROUND_UP_MANTISSA)))

    @numba.njit(cache=True)
    def _clip_flush(b, q, fsr_bits, lowest_bits):
        q = min(q, fsr_bits)
        return ((b & _U32(SIGN_MASK)) | q) * _U32(q >= lowest_bits)

    @numba.njit(cache=True)
    def _is_subnormal(b):
        # magnitude - 1 wraps for 0: true for 1 .. MANTISSA_MASK only.
        return ((b & _U32(MAGNITUDE_MASK)) - _U32(1)) < _U32(MANTISSA_MASK)

    @numba.njit(cache=True)
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

    @numba.njit(cache=True)
    def _sign_numba(x, out):
        one = numpy.float32(1)
        for i in range(x.size):
            v = x[i]
            s = one if v >= 0 else -one
            if v != v:  # NaN propagates (rare)
                s = v
            out[i] = s

    @numba.njit(cache=True)
    def _linear_quant_numba(x, out, m):
        """:func:`linear_quant`, the same float32 operations fused."""
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


CPU_KERNELS = ('numba', 'numpy', 'reference')


def _usable(name):
    return name in CPU_KERNELS and (name != 'numba' or numba is not None)


def _default_cpu_kernels():
    default = 'numpy' if numba is None else 'numba'
    chosen = os.environ.get('QUANTIZED_NET_CPU_KERNELS') or default
    if not _usable(chosen):
        warnings.warn('QUANTIZED_NET_CPU_KERNELS={!r} is not one of {} (numba '
                      'needs the numba package); using {}'.format(
                          chosen, ', '.join(CPU_KERNELS), default))
        return default
    return chosen


_cpu_kernels = _default_cpu_kernels()


def use_cpu_kernels(name):
    """Chooses the CPU forms: ``'numba'`` (fused loops, the default where
    numba imports), ``'numpy'`` (vectorised) or ``'reference'`` (the log
    quantizer as ``log2``/``rint``/``exp2`` in float64: slow, to measure
    against). All give the same bits. Also set by the environment variable
    ``QUANTIZED_NET_CPU_KERNELS``. Returns the previous choice."""
    global _cpu_kernels
    if not _usable(name):
        raise ValueError('CPU kernels must be one of {} (numba needs the '
                         'numba package), got {!r}'.format(
                             CPU_KERNELS, name))
    previous, _cpu_kernels = _cpu_kernels, name
    return previous


def cpu_kernels():
    """The CPU implementation in use (see :func:`use_cpu_kernels`)."""
    return _cpu_kernels


def _flat_numba(kernel, x, *args):
    """Runs ``kernel(x_flat, out_flat, *args)``; returns ``out_flat``."""
    x = numpy.ascontiguousarray(x).reshape(-1)
    out = numpy.empty_like(x)
    kernel(x, out, *args)
    return out


def _log_quant_cpu(x, fsr, lowest, scale):
    if _cpu_kernels == 'numba':
        bits = numpy.ascontiguousarray(x).reshape(-1).view(numpy.uint32)
        out = numpy.empty(bits.size, numpy.float32)
        _log_quant_numba(bits, out.view(numpy.uint32),
                         numpy.uint32(_float32_bits(fsr)),
                         numpy.uint32(_float32_bits(lowest)))
        if scale != 1:
            out *= numpy.float32(scale)
        return out
    if _cpu_kernels == 'reference':
        return _log_quant_reference(x, fsr, lowest, scale)
    return _log_quant_numpy(x, fsr, lowest, scale)


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
        const float q = __uint_as_float(
            (b & {SIGN_EXPONENT_MASK}u) + (round_up << {MANTISSA_BITS}))
            * back;
        y = fabsf(q) < lowest ? 0.0f : fminf(fmaxf(q, -fsr), fsr) * scale;
    }}
'''.format(
    MAGNITUDE_MASK=MAGNITUDE_MASK, EXPONENT_MASK=EXPONENT_MASK,
    MANTISSA_MASK=MANTISSA_MASK, SIGN_EXPONENT_MASK=SIGN_EXPONENT_MASK,
    AP2_ROUND_UP_MANTISSA=AP2_ROUND_UP_MANTISSA, MANTISSA_BITS=MANTISSA_BITS,
    up=repr(2.0 ** SUBNORMAL_SCALE_EXPONENT),
    down=repr(2.0 ** -SUBNORMAL_SCALE_EXPONENT))


def _log_quant_gpu(x, fsr, lowest, scale):
    kernel = cuda.elementwise(
        'float32 x, float32 fsr, float32 lowest, float32 scale', 'float32 y',
        _LOG_QUANT_CUDA, 'quantized_net_log_quant')
    return kernel(x, numpy.float32(fsr), numpy.float32(lowest),
                  numpy.float32(scale))


def _as_float32_array(x):
    """``x`` as a NumPy or CuPy array, which must be float32."""
    if not isinstance(x, cuda.ndarray):
        x = numpy.asarray(x)
    if x.dtype != numpy.float32:  # the bit rules are float32's
        raise TypeError(
            'quantizers work on float32 arrays, got {}'.format(x.dtype))
    return x


def log_quant(x, fsr, lowest=0.0, scale=1.0):
    """Logarithmic quantization with full-scale range ``fsr``.

    .. math::

        q = \\mathrm{sign}(x)\\, 2^{\\mathrm{round}(\\log_2 |x|)},
        \\qquad
        y = \\begin{cases}
            0 & |q| < \\mathrm{lowest} \\\\
            \\mathrm{clip}(q, -F, F) & \\text{otherwise}
        \\end{cases}
        \\qquad 0 \\mapsto 0

    With the default ``lowest = 0`` there is no lower bound: small magnitudes
    stay small powers of two.

    Args:
        x (numpy.ndarray or cupy.ndarray): float32 input.
        fsr (float): Full-scale range ``F > 0`` (``inf`` for plain AP2).
        lowest (float): Magnitudes whose power of two falls below this become
            0.
        scale (float): The result is multiplied by this (exactly, for a
            power of two that does not underflow).

    Returns:
        numpy.ndarray or cupy.ndarray: A new float32 array of ``x``'s shape
        and device, each element zero, a signed power of two, ``+-F`` or
        NaN.
    """
    if not fsr > 0:
        raise ValueError('fsr must be positive, got {}'.format(fsr))
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        return _log_quant_gpu(x, fsr, lowest, scale)
    # 1-d: NumPy turns 0-d results into scalars, which have no out=.
    return _log_quant_cpu(x.reshape(-1), fsr, lowest, scale).reshape(x.shape)


def ap2(x):
    """Approximate power of two, ``sign(x) * 2**round(log2|x|)``, 0 -> 0."""
    return log_quant(x, numpy.inf)


def sign(x):
    """Deterministic binarization: ``+1`` where ``x >= 0`` (``-0`` too),
    else ``-1``; NaN propagates."""
    x = _as_float32_array(x)
    if isinstance(x, numpy.ndarray) and _cpu_kernels == 'numba':
        return _flat_numba(_sign_numba, x).reshape(x.shape)
    xp = backend.get_array_module(x)
    one = numpy.float32(1)
    return _keep_nan(x, xp.where(x >= 0, one, -one))


def _keep_nan(x, y):
    """``y`` with ``x``'s NaNs put back (rare: checked before written)."""
    xp = backend.get_array_module(x)
    nan = xp.isnan(x)
    if nan.any():
        y[nan] = x[nan]
    return y


def linear_quant(x, bits):
    """Uniform quantization of ``clip(x, -1, 1)`` to ``2**bits`` levels.

    With :math:`m = 2^k - 1`, the levels are the odd multiples of
    :math:`1/m`, from -1 to 1:

    .. math::

        t = m\\,\\mathrm{clip}(x, -1, 1), \\qquad
        y = \\frac{2 \\lfloor t / 2 \\rfloor + 1}{m}

    that is, the nearest level, ties going up (towards +1); so ``bits = 1``
    is :func:`sign` exactly. NaN propagates. :math:`\\lfloor t/2 \\rfloor`
    is taken as at most -1 for every negative ``t``, even where ``t / 2``
    underflows to ``-0``.
    """
    x = _as_float32_array(x)
    m = numpy.float32(2 ** bits - 1)
    if isinstance(x, numpy.ndarray) and _cpu_kernels == 'numba':
        return _flat_numba(_linear_quant_numba, x, m).reshape(x.shape)
    xp = backend.get_array_module(x)
    t = xp.clip(x, numpy.float32(-1), numpy.float32(1)) * m
    j = xp.floor(t * numpy.float32(0.5))
    j = xp.where(t < 0, xp.minimum(j, numpy.float32(-1)), j)
    return (j * numpy.float32(2) + numpy.float32(1)) / m


def stochastic_sign(x):
    """Stochastic binarization: ``+1`` with probability
    ``clip((x + 1) / 2, 0, 1)`` (the hard sigmoid), else ``-1``; NaN
    propagates.

    Draws from NumPy's global generator (``numpy.random.seed`` makes it
    reproducible) or CuPy's on the GPU.
    """
    x = _as_float32_array(x)
    xp = backend.get_array_module(x)
    if xp is numpy:
        u = numpy.random.random_sample(x.shape).astype(numpy.float32)
    else:
        u = xp.random.random_sample(x.shape, dtype=numpy.float32)
    one, half = numpy.float32(1), numpy.float32(0.5)
    p = xp.clip((x + one) * half, numpy.float32(0), one)
    return _keep_nan(x, xp.where(u < p, one, -one))
