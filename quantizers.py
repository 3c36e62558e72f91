"""The quantizers of quantized_net, for NumPy and CuPy arrays.

Everything here works on ``float32`` arrays and returns ``float32`` arrays of
the same shape. The CPU (NumPy) and GPU (CuPy) versions are written next to
each other from the same constants or the same array code, and the tests
check they agree bit for bit.

The first part holds the array functions (:func:`log_quant`, :func:`ap2`,
:func:`seed_quant`, :func:`sign`, :func:`linear_quant`,
:func:`stochastic_sign`); the second, the named quantizers a user chooses by
spec (``none``, ``sign``, ``stochastic``, ``linear:K``, ``log:K[:FSR]``,
``seed``; see :func:`parse`), each documented with its forward formula and
its straight-through gradient.

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
  scaled back, both steps exact (NumPy, CUDA), or from the position of its
  leading mantissa bit (numba).
* ``+-inf`` maps to ``+-F`` (AP2 keeps it infinite, the clip bounds it).
* A finite value whose AP2 is :math:`2^{128}` overflows to ``inf`` and is
  clipped to ``F`` likewise.
* ``NaN`` propagates.
"""
import math
import os
import warnings

import numpy
try:
    import numba
except ImportError:  # optional: the NumPy kernels give the same bits
    numba = None

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer import backend
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


def _log_quant_numpy(x, fsr, lowest, scale):
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
    numpy.clip(q, numpy.float32(-fsr), numpy.float32(fsr), out=q)
    if lowest > 0:
        q[numpy.abs(q) < numpy.float32(lowest)] = 0
    if scale != 1:
        q *= numpy.float32(scale)
    return q


def _log_quant_reference(x, fsr, lowest, scale):
    """The textbook form, ``sign(x) 2**rint(log2|x|)`` in float64: exact
    (float64 ``log2`` of a float32 is never within rounding of a tie) but
    slow; kept to measure the kernels against."""
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
        fraction = (magnitude << (23 - lead)) & 0x007FFFFF
        return _U32(1 << (lead + (fraction >= 0x3504F4)))

    @numba.njit(cache=True)
    def _clip_flush(b, q, fsr_bits, lowest_bits):
        q = min(q, fsr_bits)
        return ((b & _U32(0x80000000)) | q) * _U32(q >= lowest_bits)

    @numba.njit(cache=True)
    def _is_subnormal(b):
        # magnitude - 1 wraps for 0: true for 1 .. 0x7FFFFF only.
        return ((b & _U32(0x7FFFFFFF)) - _U32(1)) < _U32(0x007FFFFF)

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
            magnitude = b & _U32(0x7FFFFFFF)
            q = (magnitude & _U32(0x7F800000)) + _U32(0x00800000) * _U32(
                (magnitude & _U32(0x007FFFFF)) >= _U32(0x3504F4))
            result = _clip_flush(b, q, fsr_bits, lowest_bits)
            # NaN propagates.
            out_bits[i] = b if magnitude > _U32(0x7F800000) else result
        any_subnormal = _U32(0)
        for i in range(bits.size):
            any_subnormal |= _U32(_is_subnormal(bits[i]))
        if any_subnormal:
            for i in range(bits.size):
                if _is_subnormal(bits[i]):
                    out_bits[i] = _clip_flush(
                        bits[i], _ap2_subnormal_bits(bits[i] & 0x7FFFFFFF),
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


def _default_cpu_kernels():
    default = 'numpy' if numba is None else 'numba'
    chosen = os.environ.get('QUANTIZED_NET_CPU_KERNELS') or default
    if chosen not in CPU_KERNELS or (chosen == 'numba' and numba is None):
        warnings.warn('QUANTIZED_NET_CPU_KERNELS={!r} is not one of {} (numba '
                      'needs the numba package); using {}'.format(
                          chosen, ', '.join(CPU_KERNELS), default))
        return default
    return chosen


_cpu_kernels = _default_cpu_kernels()


def use_cpu_kernels(name):
    """Chooses the CPU implementation: ``'numba'`` (fused loops;
    the default where numba imports), ``'numpy'`` (the vectorised
    fallback, bit-identical) or ``'reference'`` (the log quantizer as
    ``log2``/``rint``/``exp2`` in float64, bit-identical and slow, to
    measure against). Also set by the environment variable
    ``QUANTIZED_NET_CPU_KERNELS``. Returns the previous choice."""
    global _cpu_kernels
    if name not in CPU_KERNELS or (name == 'numba' and numba is None):
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
        const float q =
            __uint_as_float((b & {SIGN_EXPONENT_MASK}u) + (round_up << 23))
            * back;
        y = fabsf(q) < lowest ? 0.0f : fminf(fmaxf(q, -fsr), fsr) * scale;
    }}
'''.format(
    MAGNITUDE_MASK=MAGNITUDE_MASK, EXPONENT_MASK=EXPONENT_MASK,
    MANTISSA_MASK=MANTISSA_MASK, SIGN_EXPONENT_MASK=SIGN_EXPONENT_MASK,
    AP2_ROUND_UP_MANTISSA=AP2_ROUND_UP_MANTISSA,
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
    _check_float32(x)
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


def seed_quant(x):
    """The original suite's quantizer, ``LogQuant(64 x, 64) / 64``.

    Equal to ``log_quant(x, 1)``: signed powers of two up to 1 in
    magnitude, unbounded below. The original applied it (as
    ``LogQuant(64 v, 64)``, with a ``1/4096`` after the product) to weights,
    inputs and output gradients of every linear layer.
    """
    return log_quant(x, 1.0)


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


def hard_sigmoid(x):
    """``clip((x + 1) / 2, 0, 1)``, the probability of +1 in
    :func:`stochastic_sign`."""
    xp = backend.get_array_module(x)
    return xp.clip((x + numpy.float32(1)) * numpy.float32(0.5),
                   numpy.float32(0), numpy.float32(1))


def stochastic_sign(x):
    """Stochastic binarization: ``+1`` with probability
    ``hard_sigmoid(x)``, else ``-1``; NaN propagates.

    Draws from NumPy's global generator (``numpy.random.seed`` makes it
    reproducible) or CuPy's on the GPU.
    """
    x = _as_float32_array(x)
    xp = backend.get_array_module(x)
    if xp is numpy:
        u = numpy.random.random_sample(x.shape).astype(numpy.float32)
    else:
        u = xp.random.random_sample(x.shape, dtype=numpy.float32)
    one = numpy.float32(1)
    return _keep_nan(x, xp.where(u < hard_sigmoid(x), one, -one))


# Named quantizers, chosen by spec.

class Quantizer(object):
    """A named map from real values to a small set of levels.

    Attributes:
        spec (str): The spec that names it, e.g. ``'linear:2'``.
        levels (int or None): Most distinct values it outputs (``None``:
            not bounded by a bit width).
    """

    spec = None
    levels = None

    def __call__(self, x):
        """Quantizes an array (weights, inputs, gradients)."""
        raise NotImplementedError

    def activation(self, x):
        """Quantizes an array of pre-activations."""
        return self(x)

    def __repr__(self):
        return self.spec


class Identity(Quantizer):
    """``none``: no quantization.

    Forward :math:`y = x`; gradient :math:`g_x = g_y` (no cancellation).
    """

    spec = 'none'

    def __call__(self, x):
        return x


class Sign(Quantizer):
    """``sign``: deterministic binarization (Hubara et al. 2016).

    Forward :math:`y = +1` if :math:`x \\ge 0` else :math:`-1`; gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    spec = 'sign'
    levels = 2

    def __call__(self, x):
        return sign(x)


class Stochastic(Quantizer):
    """``stochastic``: stochastic binarization (Hubara et al. 2016).

    Forward, in training: :math:`y = +1` with probability
    :math:`\\mathrm{clip}((x + 1)/2, 0, 1)`, else :math:`-1`; at test time
    (``chainer.config.train`` False) :func:`sign`. Gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    spec = 'stochastic'
    levels = 2

    def __call__(self, x):
        if chainer.config.train:
            return stochastic_sign(x)
        return sign(x)


class Linear(Quantizer):
    """``linear:K``: uniform K-bit quantization of ``clip(x, -1, 1)``.

    Forward: :func:`linear_quant`, ``2**K`` evenly spaced levels from -1 to
    1, the nearest one taken (ties towards +1). Gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    max_bits = 16

    def __init__(self, bits):
        self.bits = bits
        self.spec = 'linear:{}'.format(bits)
        self.levels = 2 ** bits

    def __call__(self, x):
        return linear_quant(x, self.bits)


class Log(Quantizer):
    """``log:K[:FSR]``: logarithmic K-bit quantization (Miyashita et al.
    2016), full-scale range ``FSR`` (a power of two, default 1).

    K bits are a sign and a (K-1)-bit code; one code stands for 0, the
    others for the :math:`n = 2^{K-1} - 1` powers of two from FSR down:

    .. math::

        q = \\mathrm{sign}(x)\\, 2^{\\mathrm{round}(\\log_2|x|)}, \\qquad
        y = \\begin{cases}
            0 & |q| < \\mathrm{FSR}\\, 2^{1-n} \\\\
            \\mathrm{clip}(q, -\\mathrm{FSR}, \\mathrm{FSR})
                & \\text{otherwise}
        \\end{cases}

    so at most :math:`2n + 1 = 2^K - 1` levels. Miyashita et al. clip the
    exponent from below instead, which needs a code more and turns every
    small gradient into the smallest level; here it becomes 0. Gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    max_bits = 8

    def __init__(self, bits, fsr=1.0):
        self.bits = bits
        self.fsr = fsr
        self.exponents = 2 ** (bits - 1) - 1
        self.lowest = fsr * 2.0 ** (1 - self.exponents)
        self.spec = 'log:{}'.format(bits) + (
            '' if fsr == 1 else ':{}'.format(_format_number(fsr)))
        self.levels = 2 * self.exponents + 1

    def __call__(self, x):
        return log_quant(x, self.fsr, self.lowest)


class Seed(Quantizer):
    """``seed``: the original suite's log quantizer, unbounded below.

    Forward on weights, inputs and gradients: :func:`seed_quant`,
    :math:`\\mathrm{clip}(\\mathrm{AP2}(x), -1, 1)` (the original's
    ``LogQuant(64 x, 64)``, whose factor 64 the original's ``/4096``
    cancels); on activations, as the original's ``qst``,
    ``LogQuant(64 x, 64) / 4096``, i.e. the same divided by 64. Gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    spec = 'seed'

    def __call__(self, x):
        return seed_quant(x)

    def activation(self, x):
        return log_quant(x, 1.0, scale=1.0 / SEED_SCALE)


SPEC_FORMS = ('none, sign, stochastic, seed, linear:K (K = 1..{}), '
              'log:K[:FSR] (K = 2..{}, FSR a power of two, default 1)'.format(
                  Linear.max_bits, Log.max_bits))


def _format_number(value):
    return '{:g}'.format(value)


def _bits(text, low, high, spec):
    try:
        bits = int(text)
    except ValueError:
        bits = None
    if bits is None or not low <= bits <= high:
        raise ValueError(
            'invalid quantizer {!r}: K must be an integer from {} to {}. '
            'Valid forms: {}'.format(spec, low, high, SPEC_FORMS))
    return bits


def parse(spec):
    """The :class:`Quantizer` named by ``spec`` (see :data:`SPEC_FORMS`).

    Raises:
        ValueError: ``spec`` is not a valid form; the message lists them.
    """
    if isinstance(spec, Quantizer):
        return spec
    name, _, rest = str(spec).strip().partition(':')
    simple = {'none': Identity, 'sign': Sign, 'stochastic': Stochastic,
              'seed': Seed}
    if name in simple and not rest:
        return simple[name]()
    if name == 'linear' and rest:
        return Linear(_bits(rest, 1, Linear.max_bits, spec))
    if name == 'log' and rest:
        bits_text, _, fsr_text = rest.partition(':')
        bits = _bits(bits_text, 2, Log.max_bits, spec)
        if not fsr_text:
            return Log(bits)
        try:
            fsr = float(fsr_text)
        except ValueError:
            fsr = None
        if fsr is None or not (fsr > 0 and math.isfinite(fsr)
                               and math.frexp(fsr)[0] == 0.5):
            raise ValueError(
                'invalid quantizer {!r}: FSR must be a positive power of '
                'two such as 1, 0.5 or 4. Valid forms: {}'.format(
                    spec, SPEC_FORMS))
        return Log(bits, fsr)
    raise ValueError('invalid quantizer {!r}. Valid forms: {}'.format(
        spec, SPEC_FORMS))
