"""The array functions behind the quantizers, and their kernels.

:func:`log_quant` (and :func:`ap2`), :func:`sign`, :func:`linear_quant`,
:func:`stochastic_sign` and :func:`passes_straight_through` take a
``float32`` NumPy or CuPy array and return a new array of its shape and
device. Each has a CUDA form and CPU forms chosen by
:func:`use_cpu_kernels`; all give the same bits, which the tests check.
:mod:`quantizers` names them by spec; the log quantizer's forms are in
:mod:`log_quant_kernels`.

The CUDA forms are one elementwise kernel each, listed in
:data:`CUDA_KERNELS`. CuPy compiles them with ``-ftz=true``: every float
operation turns a subnormal operand or result into 0. So each kernel
decides on the float's bit pattern with integer operations, and does float
arithmetic only where a comment shows that flushing cannot change its
result; the tests compile the same sources for the host with flushing on
and compare them bit for bit with the CPU forms.
"""
import os
import warnings

import numpy
try:
    import numba
except ImportError:  # optional: the NumPy kernels give the same bits
    numba = None

from chainer.backends import cuda

from quantized_net import kernel_cache
from quantized_net.quantization import log_quant_kernels
from quantized_net.quantization.log_quant_kernels import CUDA_CONSTANTS


if numba is not None:
    @kernel_cache.njit
    def _sign_numba(x, out):
        one = numpy.float32(1)
        for i in range(x.size):
            v = x[i]
            s = one if v >= 0 else -one
            if v != v:  # NaN propagates (rare)
                s = v
            out[i] = s

    @kernel_cache.njit
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


_LOG_QUANT_CPU = {
    'numba': getattr(log_quant_kernels, 'log_quant_numba', None),
    'numpy': log_quant_kernels.log_quant_numpy,
    'reference': log_quant_kernels.log_quant_reference,
}

#: Each GPU form as CuPy's elementwise ``(in_params, out_params, body)``.
CUDA_KERNELS = {
    'log_quant': log_quant_kernels.LOG_QUANT_CUDA,
    # -0 is not negative (x >= 0 on the CPU); a negative subnormal is.
    'sign': ('float32 x', 'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    y = magnitude > {EXPONENT_MASK}u ? x : __uint_as_float(
        {ONE_BITS}u | (magnitude != 0u ? bits & {SIGN_MASK}u : 0u));
'''.format(**CUDA_CONSTANTS)),
    # Zero and subnormal inputs are decided on the sign bit: t = m x is
    # then below 1 in magnitude and gives the level next to zero, which is
    # -1/m for a negative subnormal and +1/m for +-0. Other inputs are
    # normal, so the float operations are the CPU's: t is normal; t / 2
    # may flush to +-0, whose floor (+-0) gives the CPU's level, as
    # floor(-tiny) = -1 is restored by the rule for negative t.
    'linear_quant': ('float32 x, float32 m', 'float32 y', '''
    const unsigned int bits = __float_as_uint(x);
    const unsigned int magnitude = bits & {MAGNITUDE_MASK}u;
    if (magnitude > {EXPONENT_MASK}u) {{
        y = x;
    }} else if (magnitude < {EXPONENT_ONE}u) {{
        y = (magnitude != 0u && (bits & {SIGN_MASK}u) ? -1.0f : 1.0f) / m;
    }} else {{
        const float t = fminf(fmaxf(x, -1.0f), 1.0f) * m;
        float j = floorf(t * 0.5f);
        if (t < 0.0f && j > -1.0f) {{
            j = -1.0f;
        }}
        y = (j * 2.0f + 1.0f) / m;
    }}
'''.format(**CUDA_CONSTANTS)),
    # x + 1 absorbs a subnormal x, flushed or not, and is 0 or at least
    # 2**-24 in magnitude, so p is 0 or at least 2**-25: never subnormal.
    # Then u < p, for u in [0, 1), has one answer whether a subnormal u is
    # flushed or not.
    'stochastic_sign': ('float32 x, float32 u', 'float32 y', '''
    if ((__float_as_uint(x) & {MAGNITUDE_MASK}u) > {EXPONENT_MASK}u) {{
        y = x;
    }} else {{
        const float p = fminf(fmaxf((x + 1.0f) * 0.5f, 0.0f), 1.0f);
        y = u < p ? 1.0f : -1.0f;
    }}
'''.format(**CUDA_CONSTANTS)),
    'passes_straight_through': ('float32 x', 'bool passes', '''
    passes = (__float_as_uint(x) & {MAGNITUDE_MASK}u) <= {ONE_BITS}u;
'''.format(**CUDA_CONSTANTS)),
}


def _on_gpu(name, *args):
    """Runs the CUDA form ``name`` of :data:`CUDA_KERNELS`."""
    in_params, out_params, body = CUDA_KERNELS[name]
    kernel = cuda.elementwise(in_params, out_params, body,
                              'quantized_net_' + name)
    return kernel(*args)


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
        scale (float): A power of two from :math:`2^{-126}` to 1 that
            multiplies the result (as a float32 multiply does: exactly,
            rounded to nearest even below the normal range).

    Returns:
        numpy.ndarray or cupy.ndarray: A new float32 array of ``x``'s shape
        and device, each element zero, a signed power of two, ``+-F`` or
        NaN.
    """
    if not fsr > 0:
        raise ValueError('fsr must be positive, got {}'.format(fsr))
    if not lowest >= 0:
        raise ValueError('lowest must be at least 0, got {}'.format(lowest))
    lowest = float(lowest) + 0.0  # -0.0 becomes 0.0, whose bits are 0
    log_quant_kernels.scale_shift(scale)  # one rule for scale, any device
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        return _on_gpu('log_quant', x, *log_quant_kernels.
                       log_quant_cuda_arguments(fsr, lowest, scale))
    # 1-d: NumPy turns 0-d results into scalars, which have no out=.
    return _LOG_QUANT_CPU[_cpu_kernels](
        x.reshape(-1), fsr, lowest, scale).reshape(x.shape)


def ap2(x):
    """Approximate power of two, ``sign(x) * 2**round(log2|x|)``, 0 -> 0."""
    return log_quant(x, numpy.inf)


def sign(x):
    """Deterministic binarization: ``+1`` where ``x >= 0`` (``-0`` too),
    else ``-1``; NaN propagates."""
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        return _on_gpu('sign', x)
    if _cpu_kernels == 'numba':
        return _flat_numba(_sign_numba, x).reshape(x.shape)
    one = numpy.float32(1)
    return _keep_nan(x, numpy.where(x >= 0, one, -one))


def _keep_nan(x, y):
    """``y`` with ``x``'s NaNs put back (rare: checked before written)."""
    nan = numpy.isnan(x)
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
    if isinstance(x, cuda.ndarray):
        return _on_gpu('linear_quant', x, m)
    if _cpu_kernels == 'numba':
        return _flat_numba(_linear_quant_numba, x, m).reshape(x.shape)
    t = numpy.clip(x, numpy.float32(-1), numpy.float32(1)) * m
    j = numpy.floor(t * numpy.float32(0.5))
    j = numpy.where(t < 0, numpy.minimum(j, numpy.float32(-1)), j)
    return (j * numpy.float32(2) + numpy.float32(1)) / m


def stochastic_sign(x):
    """Stochastic binarization: ``+1`` with probability
    ``clip((x + 1) / 2, 0, 1)`` (the hard sigmoid), else ``-1``; NaN
    propagates.

    Draws from NumPy's global generator (``numpy.random.seed`` makes it
    reproducible) or CuPy's on the GPU.
    """
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        u = cuda.cupy.random.random_sample(x.shape, dtype=numpy.float32)
    else:
        u = numpy.random.random_sample(x.shape).astype(numpy.float32)
    return stochastic_sign_of(x, u)


def stochastic_sign_of(x, u):
    """:func:`stochastic_sign` for given uniform draws ``u``, which must be
    in [0, 1): ``+1`` where ``u < clip((x + 1) / 2, 0, 1)``, else ``-1``."""
    if isinstance(x, cuda.ndarray):
        return _on_gpu('stochastic_sign', x, u)
    one = numpy.float32(1)
    p = numpy.clip((x + one) * numpy.float32(0.5), numpy.float32(0), one)
    return _keep_nan(x, numpy.where(u < p, one, -one))


def passes_straight_through(x):
    """Where the straight-through estimator lets the gradient through:
    ``|x| <= 1`` (False for NaN), as a bool array.

    Hubara et al.'s cancellation, :math:`1_{|x| \\le 1}`; the GPU form
    compares the magnitude bits, so a subnormal cannot be flushed into a
    different answer.
    """
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        return _on_gpu('passes_straight_through', x)
    return numpy.abs(x) <= numpy.float32(1)
