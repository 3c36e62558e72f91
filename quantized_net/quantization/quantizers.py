"""The named quantizers, chosen by spec.

A spec names a quantizer on the command line and in ``args.json``:
``none``, ``sign``, ``stochastic``, ``linear:K``, ``log:K[:FSR]`` or
``seed`` (:data:`SPEC_FORMS`; :func:`parse` reads one). Each quantizer below
gives its forward formula and its straight-through gradient; the array
functions that compute them, on the CPU and the GPU, are in
:mod:`~quantized_net.quantization.kernels`.

Every quantizer is applied the same way: to the input and the weight of
each quantized linear layer and to the gradient at its output
(:mod:`function_quantized_linear`), and through :meth:`Quantizer.activation`
to each hidden activation (:mod:`qst`), whose backward is the
straight-through estimator with cancellation of Hubara et al. (2016),
:math:`g_x = g_y 1_{|x| \\le 1}`.
"""
import math

import chainer

from quantized_net.quantization.kernels import (
    linear_quant, log_quant, rectified as rectify, sign, stochastic_sign)

#: The original's fixed scale, see :class:`Seed`.
SEED_SCALE = 64.0


class Quantizer(object):
    """A named map from real values to a small set of levels.

    Attributes:
        spec (str): The spec that names it, e.g. ``'linear:2'``.
        levels (int or None): Most distinct values it outputs (``None``:
            not bounded by a bit width).
        is_sign_at_test_time (bool): In test mode it computes
            :func:`~quantized_net.quantization.kernels.sign`, bit for bit:
            what a packed binarized network needs.
    """

    spec = None
    levels = None
    is_sign_at_test_time = False

    def __call__(self, x):
        """Quantizes an array (weights, inputs, gradients)."""
        return self.quantize(x)

    def quantize(self, x, rectified=False):
        """``x`` quantized; with ``rectified``, then rectified as Chainer's
        ``relu`` rectifies it, in the same pass
        (:func:`~quantized_net.quantization.kernels.rectified`)."""
        raise NotImplementedError

    def activation(self, x, rectified=False):
        """Quantizes an array of pre-activations (:meth:`quantize`)."""
        return self.quantize(x, rectified)

    def __repr__(self):
        return self.spec


class Identity(Quantizer):
    """``none``: no quantization.

    Forward :math:`y = x`; gradient :math:`g_x = g_y` (no cancellation).
    """

    spec = 'none'

    def quantize(self, x, rectified=False):
        return rectify(x) if rectified else x


class Sign(Quantizer):
    """``sign``: deterministic binarization (Hubara et al. 2016).

    Forward :math:`y = +1` if :math:`x \\ge 0` else :math:`-1`; gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    spec = 'sign'
    levels = 2
    is_sign_at_test_time = True

    def quantize(self, x, rectified=False):
        return sign(x, rectified)


class Stochastic(Quantizer):
    """``stochastic``: stochastic binarization (Hubara et al. 2016).

    Forward, in training: :math:`y = +1` with probability
    :math:`\\mathrm{clip}((x + 1)/2, 0, 1)`, else :math:`-1`; at test time
    (``chainer.config.train`` False) :func:`sign`. Gradient
    :math:`g_x = g_y 1_{|x| \\le 1}` as an activation.
    """

    spec = 'stochastic'
    levels = 2
    is_sign_at_test_time = True

    def quantize(self, x, rectified=False):
        if chainer.config.train:
            return stochastic_sign(x, rectified)
        return sign(x, rectified)


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
        self.is_sign_at_test_time = bits == 1

    def quantize(self, x, rectified=False):
        return linear_quant(x, self.bits, rectified)


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

    def quantize(self, x, rectified=False):
        return log_quant(x, self.fsr, self.lowest, rectified=rectified)


class Seed(Quantizer):
    """``seed``: the original suite's log quantizer, unbounded below.

    The original quantizes with
    :math:`\\mathrm{LogQuant}(v, F) = \\mathrm{clip}(\\mathrm{AP2}(v), -F, F)`,
    :math:`\\mathrm{AP2}(v) = \\mathrm{sign}(v)\\,
    2^{\\mathrm{round}(\\log_2|v|)}` (0 for 0), at a fixed scale: its linear
    layer computes ``LogQuant(64 x, 64) @ LogQuant(64 W, 64).T / 4096 + b``
    and its backward ``gq = LogQuant(64 gy, 64)``, ``gx = gq @ Wq / 4096``,
    ``gW = gq.T @ xq / 4096``; its activation is
    ``LogQuant(64 x, 64) / 4096``. AP2 commutes with a power-of-two scale,
    so ``LogQuant(64 v, 64) / 64 = LogQuant(v, 1)``: the two factors of 64
    in each product cancel the ``/4096``, and this quantizer is

    .. math::

        y = \\mathrm{clip}(\\mathrm{AP2}(x), -1, 1)

    on weights, inputs and gradients, and that divided by 64
    (:data:`SEED_SCALE`) on activations: the original's bits, without its
    scale factors. Gradient :math:`g_x = g_y 1_{|x| \\le 1}` as an
    activation.
    """

    spec = 'seed'

    def quantize(self, x, rectified=False):
        return log_quant(x, 1.0, rectified=rectified)

    def activation(self, x, rectified=False):
        return log_quant(x, 1.0, scale=1.0 / SEED_SCALE, rectified=rectified)


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
