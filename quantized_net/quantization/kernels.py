"""The array functions behind the quantizers, each picking its form by
device.

:func:`log_quant` (and :func:`ap2`), :func:`sign`, :func:`linear_quant`,
:func:`stochastic_sign` and :func:`straight_through_gradient` take a
``float32`` NumPy or CuPy array and return a new array of its shape and
device. A CuPy array goes to the CUDA form
(:mod:`~quantized_net.quantization.cuda_forms`); a NumPy array to the CPU
forms in use, :func:`cpu_kernels`: the fused loops of
:mod:`~quantized_net.quantization.numba_forms` (``'numba'``, the default
where numba imports), the vectorised
:mod:`~quantized_net.quantization.numpy_forms` (``'numpy'``), or those with
the log quantizer in its textbook float64 form (``'reference'``: slow, to
measure against). Every form gives the same bits, which the tests check;
:mod:`~quantized_net.quantization.quantizers` names them by spec.

The CPU forms are chosen for the whole process by the environment
variable ``QUANTIZED_NET_CPU_KERNELS``, and for a block of code by
:func:`using_cpu_kernels`.
"""
import contextlib
import os
import warnings

import numpy

from chainer.backends import cuda

from quantized_net.c_order import c_contiguous
from quantized_net.quantization import cuda_forms
from quantized_net.quantization import numba_forms
from quantized_net.quantization import numpy_forms
from quantized_net.quantization.float32_layout import scale_shift

#: The names of the CPU forms.
CPU_KERNELS = ('numba', 'numpy', 'reference')

#: Where a CPU choice differs from the NumPy forms.
_CPU_FORMS = {
    'numpy': {},
    'reference': {'log_quant': numpy_forms.log_quant_reference},
}
if numba_forms.AVAILABLE:
    _CPU_FORMS['numba'] = {'log_quant': numba_forms.log_quant,
                           'sign': numba_forms.sign,
                           'linear_quant': numba_forms.linear_quant,
                           'straight_through_gradient':
                               numba_forms.straight_through_gradient,
                           'rectified_straight_through_gradient':
                               numba_forms
                               .rectified_straight_through_gradient}


def usable_cpu_kernels():
    """The names of :data:`CPU_KERNELS` that run here (``'numba'`` needs
    the numba package)."""
    return tuple(name for name in CPU_KERNELS if name in _CPU_FORMS)


def _default_cpu_kernels():
    default = 'numba' if numba_forms.AVAILABLE else 'numpy'
    chosen = os.environ.get('QUANTIZED_NET_CPU_KERNELS') or default
    if chosen not in _CPU_FORMS:
        warnings.warn('QUANTIZED_NET_CPU_KERNELS={!r} is not one of {} (numba '
                      'needs the numba package); using {}'.format(
                          chosen, ', '.join(CPU_KERNELS), default))
        return default
    return chosen


_cpu_kernels = _default_cpu_kernels()


def cpu_kernels():
    """The name of the CPU forms in use: ``'numba'``, ``'numpy'`` or
    ``'reference'``."""
    return _cpu_kernels


@contextlib.contextmanager
def using_cpu_kernels(name):
    """Runs the block with the CPU forms ``name`` (one of
    :data:`CPU_KERNELS`), then restores the choice before it, as
    ``chainer.using_config`` does::

        with kernels.using_cpu_kernels('reference'):
            y = kernels.log_quant(x, 1.0)

    Raises:
        ValueError: ``name`` is not one of :func:`usable_cpu_kernels`.
    """
    global _cpu_kernels
    if name not in _CPU_FORMS:
        raise ValueError('CPU kernels must be one of {} (numba needs the '
                         'numba package), got {!r}'.format(
                             CPU_KERNELS, name))
    previous, _cpu_kernels = _cpu_kernels, name
    try:
        yield
    finally:
        _cpu_kernels = previous


def _as_float32_array(x):
    """``x`` as a NumPy or CuPy array, which must be float32."""
    if not isinstance(x, cuda.ndarray):
        x = numpy.asarray(x)
    if x.dtype != numpy.float32:  # the bit rules are float32's
        raise TypeError(
            'quantizers work on float32 arrays, got {}'.format(x.dtype))
    return x


def _apply(name, x, *args, **kwargs):
    """The form ``name`` for ``x``'s device applied to ``x`` and ``args``
    (arrays of ``x``'s shape or scalars); with ``rectified=True`` (a
    quantizer), its result rectified as Chainer's ``relu`` rectifies it
    on that device (:func:`rectified`)."""
    x = _as_float32_array(x)
    if isinstance(x, cuda.ndarray):
        return getattr(cuda_forms, name)(x, *args, **kwargs)
    form = _CPU_FORMS[_cpu_kernels].get(name) or getattr(numpy_forms, name)
    # The CPU forms take 1-d arrays: NumPy would turn 0-d results into
    # scalars, and numba's loops index one axis. In C order, whatever the
    # layout (a convolution's output is channels last).
    args = [c_contiguous(a).reshape(-1) if isinstance(a, numpy.ndarray)
            else a for a in args]
    y = form(c_contiguous(x).reshape(-1), *args).reshape(x.shape)
    if kwargs.get('rectified'):
        numpy.maximum(y, 0, out=y)
    return y


def rectified(quantized):
    """Chainer's ``relu`` of an array on either device: NumPy's
    ``maximum(y, 0)`` (a NaN stays as it is, -0 becomes +0) or CuPy's
    (a NaN becomes CuPy's NaN, a subnormal is flushed to 0). The
    quantizers take ``rectified=True`` to give this of their result in
    the same pass, on the GPU the same launch."""
    xp = cuda.get_array_module(quantized)
    return xp.maximum(quantized, 0, dtype=quantized.dtype)


def log_quant(x, fsr, lowest=0.0, scale=1.0, rectified=False):
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
    stay small powers of two. The power of two is taken from the bit
    pattern (:mod:`~quantized_net.quantization.float32_layout`), exactly;
    special values are the same on every device:

    * ``+-0`` maps to itself (value 0, sign bit kept).
    * Subnormals are quantized exactly, on the GPU too.
    * ``+-inf``, and a finite value whose power of two overflows to
      :math:`2^{128}`, map to ``+-F``.
    * ``NaN`` propagates.

    Args:
        x (numpy.ndarray or cupy.ndarray): float32 input.
        fsr (float): Full-scale range ``F > 0`` (``inf`` for plain AP2).
        lowest (float): Magnitudes whose power of two falls below this become
            0.
        scale (float): A power of two from :math:`2^{-126}` to 1 that
            multiplies the result (as a float32 multiply does: exactly,
            rounded to nearest even below the normal range).
        rectified (bool): Rectify the result in the same pass, as
            :func:`rectified` does (so for each quantizer below).

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
    scale_shift(scale)  # one rule for scale, any device
    return _apply('log_quant', x, fsr, lowest, scale, rectified=rectified)


def ap2(x):
    """Approximate power of two, ``sign(x) * 2**round(log2|x|)``, 0 -> 0."""
    return log_quant(x, numpy.inf)


def sign(x, rectified=False):
    """Deterministic binarization: ``+1`` where ``x >= 0`` (``-0`` too),
    else ``-1``; NaN propagates."""
    return _apply('sign', x, rectified=rectified)


def linear_quant(x, bits, rectified=False):
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
    return _apply('linear_quant', x, numpy.float32(2 ** bits - 1),
                  rectified=rectified)


def stochastic_sign(x, rectified=False):
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
    return stochastic_sign_of(x, u, rectified)


def stochastic_sign_of(x, u, rectified=False):
    """:func:`stochastic_sign` for given uniform draws ``u``, which must be
    in [0, 1): ``+1`` where ``u < clip((x + 1) / 2, 0, 1)``, else ``-1``."""
    return _apply('stochastic_sign', x, u, rectified=rectified)


def straight_through_gradient(gy, x):
    """The straight-through estimator's gradient with cancellation (Hubara
    et al. 2016): ``gy`` where ``|x| <= 1``, else ``+0``, NaN ``x``
    included.

    .. math::

        g_x = g_y \\cdot 1_{|x| \\le 1}

    as a select: ``gy`` passes bit for bit (a NaN, an infinity, a
    subnormal), and where it is cancelled it is ``+0``, whatever it was.
    The GPU form compares the magnitude bits of ``x``, so a subnormal
    cannot be flushed into a different answer.

    Args:
        gy: float32 gradient, of ``x``'s shape and device.
        x: float32 input of the quantizer.
    """
    gy = _as_float32_array(gy)
    if gy.shape != numpy.shape(x):
        raise ValueError('gy has shape {}, x {}: they must be the same'
                         .format(gy.shape, numpy.shape(x)))
    return _apply('straight_through_gradient', x, gy)


def rectified_straight_through_gradient(gy, x, y):
    """The gradient of a rectified quantized activation, ``y =
    relu(q(x))``: Chainer's ``relu`` gradient (``gy`` where ``y > 0``,
    else 0: on the CPU ``gy`` times 1 or 0, on the GPU a select), then
    :func:`straight_through_gradient`, in one pass:

    .. math::

        g_x = g_y \\cdot 1_{y > 0} \\cdot 1_{|x| \\le 1}

    the same bits as the two in turn.

    Args:
        gy: float32 gradient of ``y``, of ``x``'s shape and device.
        x: float32 input of the quantizer.
        y: float32 output, ``relu(q(x))``.
    """
    gy = _as_float32_array(gy)
    if not gy.shape == numpy.shape(x) == numpy.shape(y):
        raise ValueError('gy has shape {}, x {}, y {}: they must be the '
                         'same'.format(gy.shape, numpy.shape(x),
                                       numpy.shape(y)))
    return _apply('rectified_straight_through_gradient', x, y, gy)
