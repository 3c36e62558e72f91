"""Chainer's batch normalisation in training, its CPU forward and backward
each one compiled call.

Chainer's CPU code (``GeneralBatchNormalizationImpl``) makes a NumPy
pass and a temporary array for each operation: the mean, the variance (a
difference, a square, a sum), the normalised values, their scale and
shift; the backward as many again. :class:`BatchNormalization`, the
link, computes the same float32 operations in the same order, each sum
in the order NumPy adds it (:func:`image_kernels`,
:func:`rows_forward_kernel`), in one numba kernel a direction, so a run
gives the same bits as with Chainer's link and its snapshots are the
same. It runs where Chainer would run its own NumPy code on float32: a
batch of vectors ``(N, C)`` or of images ``(N, C, H, W)``, normalised
per channel, laid out C-contiguous or (images) channels last, as a
convolution leaves them: NumPy's sums follow the layout, and so do the
kernels' (:func:`sums_along`). Elsewhere (the GPU, iDeep, other shapes,
layouts or dtypes, no numba, test mode) it is Chainer's code. Where a
gradient is infinite or NaN, the gradients' NaNs are where Chainer's
are, their sign bits as the order of operations on two NaNs makes them.

The link applies the activation that follows it in the networks, the
rectifier or the hard tanh (:class:`Relu`, :class:`HardTanh`), in the
same kernels where asked (``bn(h, activation=...)``): the activation
needs no pass of its own either way (its gradient's mask is made again
from the normalised values, as the forward made them), and the graph has
one function where it had two (:class:`NormalizedActivation`); the same
bits as Chainer's link then Chainer's function.

For a channel's values :math:`x_i`, :math:`m` of them:

.. math::

    \\mu = \\frac{1}{m}\\sum_i x_i, \\quad
    \\sigma^2 = \\frac{1}{m}\\sum_i (x_i - \\mu)^2, \\quad
    \\hat{x}_i = (x_i - \\mu)\\,\\frac{1}{\\sqrt{\\sigma^2 + \\epsilon}},
    \\quad y_i = \\gamma \\hat{x}_i + \\beta,

and, for the gradient :math:`g_i` of :math:`y_i`,

.. math::

    \\frac{\\partial L}{\\partial \\beta} = \\sum_i g_i, \\quad
    \\frac{\\partial L}{\\partial \\gamma} = \\sum_i g_i \\hat{x}_i, \\quad
    \\frac{\\partial L}{\\partial x_i} = \\frac{\\gamma}{\\sqrt{\\sigma^2 +
    \\epsilon}} \\Big(g_i - \\frac{1}{m}\\big(\\hat{x}_i
    \\frac{\\partial L}{\\partial \\gamma} +
    \\frac{\\partial L}{\\partial \\beta}\\big)\\Big).

The backward's own backward (a second order gradient) is Chainer's.
"""
import numpy

import chainer
from chainer import configuration
from chainer.backends import intel64
from chainer.functions.activation import relu
from chainer.functions.normalization import batch_normalization as bn
import chainer.links

from quantized_net import kernel_cache
from quantized_net.c_order import c_contiguous
from quantized_net.training import clip, layouts

numba = kernel_cache.numba  # None where numba does not import

#: NumPy's unrolling of a pairwise sum, and the most values it adds one
#: after another before it splits them in two.
UNROLL, PAIRWISE_BLOCK = 8, 128
#: The activations the kernels apply to what they normalise
#: (:class:`Relu`, :class:`HardTanh`), none for :data:`IDENTITY`.
IDENTITY, RELU, CLIP = range(3)


def pairwise_plan(n):
    """NumPy's pairwise sum of ``n`` float32 values as a plan that a loop
    follows, where the recursion NumPy makes costs a call for each block:
    NumPy adds fewer than 8 values one after another, up to 128 in 8
    running sums, and splits more in two halves, the first a multiple of
    8 values, adding the halves' sums.

    Returns:
        tuple: ``(leaves, joins)``, int64 arrays: each block of at most
        :data:`PAIRWISE_BLOCK` values, ``(start, length)``, in order; then
        each addition of two partial sums, ``(i, j)``, indexes into the
        leaves' sums followed by the joins' own, the last join (or the one
        leaf) the total. Read-only, cached for each ``n``.
    """
    plan = _PLANS.get(n)
    if plan is None:
        leaves, joins = [], []

        def node(start, length):
            # The partial sum of values[start:start + length]: (kind, index).
            if length <= PAIRWISE_BLOCK:
                leaves.append((start, length))
                return 0, len(leaves) - 1
            half = length // 2
            half -= half % UNROLL
            pair = node(start, half), node(start + half, length - half)
            joins.append(pair)
            return 1, len(joins) - 1

        node(0, n)
        offsets = (0, len(leaves))
        plan = (numpy.array(leaves, numpy.int64).reshape(-1, 2),
                numpy.array([[offsets[k] + i for k, i in pair]
                             for pair in joins], numpy.int64).reshape(-1, 2))
        for a in plan:
            a.flags.writeable = False
        _PLANS[n] = plan
    return plan


_PLANS = {}


def _planned_sums_of(term):
    # A loop over a pairwise plan's blocks, each block's values made by
    # ``term`` as it reads them: two sums of one pass, NumPy's order each.
    # numba caches a closure under the values of its cells.
    @kernel_cache.njit
    def planned_sums(values, others, base, leaves, joins, context, partials):
        """The pairwise sums (:func:`pairwise_plan`'s ``leaves`` and
        ``joins``) of the two terms ``term(values, others, at, context)``
        makes for each ``at`` of ``base + [0, n)``, ``partials`` float32
        ``(2, leaves + joins)`` scratch."""
        for k in range(leaves.shape[0]):
            start = numpy.uint64(base + leaves[k, 0])
            n = leaves[k, 1]
            a = b = numpy.float32(0)
            if n < UNROLL:
                for i in range(n):
                    ta, tb = term(values, others, start + numpy.uint64(i),
                                  context)
                    a += ta
                    b += tb
            else:
                # NumPy's eight running sums, written out as its C code
                # has them: scalars stay in registers, where an array of
                # eight would make every addition a load and a store.
                a0, b0 = term(values, others, start, context)
                a1, b1 = term(values, others, start + numpy.uint64(1), context)
                a2, b2 = term(values, others, start + numpy.uint64(2), context)
                a3, b3 = term(values, others, start + numpy.uint64(3), context)
                a4, b4 = term(values, others, start + numpy.uint64(4), context)
                a5, b5 = term(values, others, start + numpy.uint64(5), context)
                a6, b6 = term(values, others, start + numpy.uint64(6), context)
                a7, b7 = term(values, others, start + numpy.uint64(7), context)
                whole = n - n % UNROLL
                for i in range(UNROLL, whole, UNROLL):
                    at = start + numpy.uint64(i)
                    t, u = term(values, others, at, context)
                    a0 += t
                    b0 += u
                    t, u = term(values, others, at + numpy.uint64(1), context)
                    a1 += t
                    b1 += u
                    t, u = term(values, others, at + numpy.uint64(2), context)
                    a2 += t
                    b2 += u
                    t, u = term(values, others, at + numpy.uint64(3), context)
                    a3 += t
                    b3 += u
                    t, u = term(values, others, at + numpy.uint64(4), context)
                    a4 += t
                    b4 += u
                    t, u = term(values, others, at + numpy.uint64(5), context)
                    a5 += t
                    b5 += u
                    t, u = term(values, others, at + numpy.uint64(6), context)
                    a6 += t
                    b6 += u
                    t, u = term(values, others, at + numpy.uint64(7), context)
                    a7 += t
                    b7 += u
                a = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
                b = ((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7))
                for i in range(whole, n):
                    t, u = term(values, others, start + numpy.uint64(i),
                                context)
                    a += t
                    b += u
            partials[0, k] = a
            partials[1, k] = b
        first = leaves.shape[0]
        for j in range(joins.shape[0]):
            partials[0, first + j] = (partials[0, joins[j, 0]] +
                                      partials[0, joins[j, 1]])
            partials[1, first + j] = (partials[1, joins[j, 0]] +
                                      partials[1, joins[j, 1]])
        last = first + joins.shape[0] - 1
        return partials[0, last], partials[1, last]
    return planned_sums


if numba is not None:
    @kernel_cache.njit
    def _value(values, others, at, context):
        return values[at], numpy.float32(0)

    @kernel_cache.njit
    def _pair(values, others, at, context):
        return values[at], others[at]

    @kernel_cache.njit
    def _squared_deviation(values, others, at, context):
        d = values[at] - context
        return d * d, numpy.float32(0)

    #: The planned sums of the values; of the values and the ``others``,
    #: each; of the values' squared deviations from the mean
    #: (``context``).
    value_sums = _planned_sums_of(_value)
    pair_sums = _planned_sums_of(_pair)
    squared_deviation_sums = _planned_sums_of(_squared_deviation)

    @kernel_cache.njit
    def normalised_value(x, mu, scale, g, b):
        """``x`` normalised, ``((x - mu) scale) g + b``: the forward's
        output before its activation, and the backward's mask's input."""
        return ((x - mu) * scale) * g + b

    @kernel_cache.njit
    def activated(activation, v):
        """``v`` after ``activation`` ``(kind, low, high)``: for
        :data:`RELU`, NumPy's ``maximum(v, 0)`` (a NaN stays, -0 becomes
        +0); for :data:`CLIP`, its ``clip(v, low, high)`` (a NaN stays, a
        value equal to a bound stays: -0 is not raised to a bound of
        +0)."""
        kind, low, high = activation
        if kind == RELU:
            return v if v > 0 or v != v else numpy.float32(0)
        if kind == CLIP and v == v:
            v = v if v >= low else low
            v = v if v <= high else high
        return v

    @kernel_cache.njit
    def passed(activation, gy, x, mu, scale, g, b):
        """The gradient ``gy`` of an activation's output as that
        activation's Chainer gradient passes it to its input, the
        normalised value (:func:`normalised_value`) made again as the
        forward made it: ``gy`` times 1 or 0, as NumPy multiplies by a boolean
        (:data:`RELU`: the output is above 0; :data:`CLIP`: ``low <= input
        <= high``); ``gy`` itself for :data:`IDENTITY`."""
        kind, low, high = activation
        if kind == IDENTITY:
            return gy
        pre = normalised_value(x, mu, scale, g, b)
        passes = pre > 0 if kind == RELU else low <= pre <= high
        return gy * (numpy.float32(1) if passes else numpy.float32(0))

    @kernel_cache.njit
    def rows_forward_kernel(x, gamma, beta, eps, activation, y, mean, var,
                            inv_std):
        """The forward of :func:`image_kernels` of rows ``(positions,
        channels)``, two or more channels (a batch of vectors, or images
        laid out channels last): NumPy adds each channel's values one
        after another, so the sums run along the rows, as contiguous as
        ``x``."""
        positions, channels = x.shape
        total = numpy.zeros(channels, numpy.float32)
        for n in range(positions):
            for c in range(channels):
                total[c] += x[n, c]
        for c in range(channels):
            mean[c] = numpy.float32(total[c] / positions)
            total[c] = 0
        for n in range(positions):
            for c in range(channels):
                d = x[n, c] - mean[c]
                total[c] += d * d
        for c in range(channels):
            var[c] = numpy.float32(total[c] / positions)
            inv_std[c] = numpy.float32(1) / numpy.sqrt(var[c] + eps)
        for n in range(positions):
            for c in range(channels):
                y[n, c] = activated(activation, normalised_value(
                    x[n, c], mean[c], inv_std[c], gamma[c], beta[c]))

    @kernel_cache.njit
    def rows_backward_kernel(x, gy, gamma, beta, mean, inv_std, inv_m,
                             activation, gx, ggamma, gbeta):
        """The backward of :func:`image_kernels` of rows, as
        :func:`rows_forward_kernel`."""
        positions, channels = x.shape
        gbeta[:] = 0
        ggamma[:] = 0
        for n in range(positions):
            for c in range(channels):
                g = passed(activation, gy[n, c], x[n, c], mean[c],
                           inv_std[c], gamma[c], beta[c])
                gbeta[c] += g
                ggamma[c] += g * ((x[n, c] - mean[c]) * inv_std[c])
        factor = gamma * inv_std
        for n in range(positions):
            for c in range(channels):
                g = passed(activation, gy[n, c], x[n, c], mean[c],
                           inv_std[c], gamma[c], beta[c])
                x_hat = (x[n, c] - mean[c]) * inv_std[c]
                gx[n, c] = factor[c] * (g - (
                    x_hat * ggamma[c] + gbeta[c]) * inv_m)

    def _image_kernels_of(kind):
        # The activation's kind a constant, in place of the argument's:
        # its tests leave the loops. numba caches a closure under the
        # values of its cells.
        @kernel_cache.njit
        def forward(x, gamma, beta, eps, activation, leaves, joins, y, mean,
                    var, inv_std):
            """Normalises ``x`` ``(images, channels, size)``, C-contiguous,
            into ``y``, after the activation (:func:`activated`), and
            writes each channel's mean, variance and inverse deviation (the
            module's forward formulas; ``eps`` a float32). Each sum as
            NumPy's ``sum(axis=(0, 2, 3))`` adds a channel of ``(images,
            channels, height, width)``: each image's values pairwise, then
            the images one after another; of a single channel, all its
            values pairwise. ``leaves`` and ``joins``: the
            :func:`pairwise_plan` of ``size`` values, of all for a single
            channel."""
            images, channels, size = x.shape
            count = images * size
            values, out = x.reshape(-1), y.reshape(-1)
            single = channels == 1
            blocks = 1 if single else images
            partials = numpy.empty((2, leaves.shape[0] + joins.shape[0]),
                                   numpy.float32)
            activation = (kind, activation[1], activation[2])
            for c in range(channels):
                total = numpy.float32(0)
                for n in range(blocks):
                    block = value_sums(values, values, (n * channels + c) *
                                       size, leaves, joins, 0, partials)[0]
                    total = block if single else total + block
                # NumPy divides a float32 sum by the integer count in
                # float64.
                mu = numpy.float32(total / count)
                total = numpy.float32(0)
                for n in range(blocks):
                    block = squared_deviation_sums(
                        values, values, (n * channels + c) * size, leaves,
                        joins, mu, partials)[0]
                    total = block if single else total + block
                sigma2 = numpy.float32(total / count)
                scale = numpy.float32(1) / numpy.sqrt(sigma2 + eps)
                g, b = gamma[c], beta[c]
                for n in range(images):
                    base = numpy.uint64((n * channels + c) * size)
                    for s in range(size):
                        at = base + numpy.uint64(s)
                        out[at] = activated(activation, normalised_value(
                            values[at], mu, scale, g, b))
                mean[c] = mu
                var[c] = sigma2
                inv_std[c] = scale

        @kernel_cache.njit
        def backward(x, gy, gamma, beta, mean, inv_std, inv_m, activation,
                     leaves, joins, gx, ggamma, gbeta):
            """The gradients of ``x`` (into ``gx``), ``gamma`` and
            ``beta`` for ``gy``, all ``(images, channels, size)``
            C-contiguous (the module's backward formulas; ``inv_m`` the
            float32 ``1 / count``), ``gy`` the gradient of the
            activation's output (:func:`passed`). The sums as the
            forward's, of the terms of both in one pass."""
            images, channels, size = x.shape
            count = images * size
            values, grads, out = x.reshape(-1), gy.reshape(-1), gx.reshape(-1)
            partials = numpy.empty((2, leaves.shape[0] + joins.shape[0]),
                                   numpy.float32)
            activation = (kind, activation[1], activation[2])
            single = channels == 1
            terms = count if single else size
            passed_terms = numpy.empty(terms, numpy.float32)
            products = numpy.empty(terms, numpy.float32)
            for c in range(channels):
                mu, scale, g, b = mean[c], inv_std[c], gamma[c], beta[c]
                beta_grad = gamma_grad = numpy.float32(0)
                for n in range(images):
                    base = numpy.uint64((n * channels + c) * size)
                    at = numpy.uint64(n * size if single else 0)
                    for s in range(size):
                        v = values[base + numpy.uint64(s)]
                        p = passed(activation, grads[base + numpy.uint64(s)],
                                   v, mu, scale, g, b)
                        passed_terms[at + numpy.uint64(s)] = p
                        products[at + numpy.uint64(s)] = p * ((v - mu) *
                                                              scale)
                    if not single:
                        sums = pair_sums(passed_terms, products, 0, leaves,
                                         joins, 0, partials)
                        beta_grad += sums[0]
                        gamma_grad += sums[1]
                if single:
                    beta_grad, gamma_grad = pair_sums(
                        passed_terms, products, 0, leaves, joins, 0, partials)
                factor = g * scale
                for n in range(images):
                    base = numpy.uint64((n * channels + c) * size)
                    for s in range(size):
                        at = base + numpy.uint64(s)
                        v = values[at]
                        x_hat = (v - mu) * scale
                        out[at] = factor * (passed(
                            activation, grads[at], v, mu, scale, g, b) -
                            (x_hat * gamma_grad + beta_grad) * inv_m)
                ggamma[c] = gamma_grad
                gbeta[c] = beta_grad

        return forward, backward

    _IMAGE_KERNELS = {}

    def image_kernels(activation):
        """The forward and backward kernels of images for ``activation``
        ``(kind, low, high)``, each compiled once a kind."""
        kind = int(activation[0])
        kernels = _IMAGE_KERNELS.get(kind)
        if kernels is None:
            kernels = _IMAGE_KERNELS[kind] = _image_kernels_of(kind)
        return kernels


def fuses(x, gamma, axis):
    """Whether the fused kernels compute Chainer's training forward of
    ``x`` with ``gamma`` over ``axis`` (Chainer's link's, None for the
    default): float32 NumPy arrays, normalised per channel of a batch of
    vectors or images, without iDeep."""
    return (numba is not None and isinstance(x, numpy.ndarray)
            and isinstance(gamma, numpy.ndarray)
            and x.dtype == numpy.float32 and gamma.dtype == numpy.float32
            and x.ndim in (2, 4) and gamma.shape == x.shape[1:2]
            and axis in (None, (0,) + tuple(range(2, x.ndim)))
            and x.shape[0] > 1 and x.size < 2 ** 31
            and not intel64.should_use_ideep('>=auto'))


def sums_along(a):
    """How NumPy adds up a channel of ``a`` ``(N, C, ...)`` over the other
    axes, which follows ``a``'s memory layout: ``'images'`` (C-contiguous
    images: each image's values pairwise, then image after image),
    ``'rows'`` (the positions in memory order, each channel's values one
    after another: a C-contiguous batch of vectors, or images laid out
    channels last, as a convolution leaves them), or None (another
    layout, which the kernels do not follow)."""
    n, c = a.shape[:2]
    if a.flags.c_contiguous:
        return 'rows' if c > 1 and a.size == n * c else 'images'
    if (a.ndim == 4 and c > 1 and
            a.transpose(0, 2, 3, 1).flags.c_contiguous):
        return 'rows'
    return None


def image_plan(x):
    """The :func:`pairwise_plan` of a channel's sums of ``x`` ``(N, C,
    ...)`` in the image kernels: of an image's values, of all for a single
    channel."""
    size = x.size // (x.shape[0] * x.shape[1])
    return pairwise_plan(size * (x.shape[0] if x.shape[1] == 1 else 1))


def _images(a):
    """``a`` ``(N, C, ...)`` as ``(N, C, size)``, C-contiguous."""
    return c_contiguous(a).reshape(a.shape[0], a.shape[1], -1)


def _rows(a):
    """``a`` ``(N, C, ...)`` as ``(positions, C)``, the channels along
    the rows: a view where ``a`` is laid out ``'rows'``."""
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    return a.reshape(-1, a.shape[-1])


class Relu(object):
    """The rectifier, ``chainer.functions.relu``, as an activation the
    normalisation applies in its pass (:meth:`BatchNormalization.forward`):
    :math:`y = \\max(x, 0)`, :math:`g_x = g_y \\cdot 1_{x > 0}`."""
    kernel_argument = (RELU, 0., 0.)

    def __call__(self, x):
        """Chainer's function of ``x``."""
        return relu.relu(x)

    def gradient(self, x, gy):
        """Chainer's gradient of the output for ``gy``, ``x`` the input (the
        mask of its output ``max(x, 0) > 0`` is that of ``x > 0``)."""
        return relu.ReLUGrad2(x).apply((gy,))[0]


class HardTanh(object):
    """The hard tanh, :func:`~quantized_net.training.clip.clip` to
    ``[low, high]``, as an activation the normalisation applies in its pass
    (:meth:`BatchNormalization.forward`): :math:`y = \\min(\\max(x, l), h)`,
    :math:`g_x = g_y \\cdot 1_{l \\le x \\le h}`."""

    def __init__(self, low, high):
        self.low, self.high = low, high
        self.kernel_argument = (CLIP, low, high)

    def __call__(self, x):
        """Chainer's function of ``x`` (its gradient one pass)."""
        return clip.clip(x, self.low, self.high)

    def gradient(self, x, gy):
        """The gradient of the output for ``gy``, ``x`` the input."""
        return clip.ClipGrad(x, self.low, self.high).apply((gy,))[0]


def _kernel_activation(activation):
    """The kernels' ``(kind, low, high)`` of ``activation`` (None for
    none)."""
    kind, low, high = (activation.kernel_argument if activation else
                       (IDENTITY, 0., 0.))
    return numpy.int64(kind), numpy.float32(low), numpy.float32(high)


def normalised(x, gamma, beta, mean, inv_std, expander):
    """Chainer's normalised ``x``, the bits of its NumPy forward and of the
    kernels: ``gamma ((x - mean) inv_std) + beta``, the channel's values
    indexed by ``expander``."""
    y = gamma[expander] * ((x - mean[expander]) * inv_std[expander])
    y += beta[expander]
    return y


class FusedImpl(bn.GeneralBatchNormalizationImpl):
    """Chainer's NumPy implementation with the forward and backward of
    the fused kernels where they follow NumPy's sums, which follow the
    layouts (:func:`sums_along`): the forward's ``x``'s, the backward's
    ``gy``'s; the outputs laid out as Chainer's. Elsewhere it is
    Chainer's.

    With ``activation`` (:class:`Relu` or :class:`HardTanh`), its output
    is the activation of the normalised values, and the gradient it takes
    is of that output. ``beta``, the shift, which the backward's kernels
    take, is the forward's where not given."""

    def __init__(self, activation=None, beta=None):
        self.activation = activation
        self.beta = beta

    def forward(self, axis, gamma, x, x_layout, xp, expander, beta, eps,
                decay, running_mean, running_var):
        self.beta = beta
        sums = sums_along(x)
        if sums is None:
            outputs = super(FusedImpl, self).forward(
                axis, gamma, x, x_layout, xp, expander, beta, eps, decay,
                running_mean, running_var)
            if self.activation is None:
                return outputs
            return (self.activation(outputs[0]).array,) + outputs[1:]
        channels = x.shape[1]
        y = numpy.empty_like(x)  # x's layout, as NumPy's y has it
        mean, var, inv_std = (numpy.empty(channels, numpy.float32)
                              for _ in range(3))
        arguments = (gamma, numpy.ascontiguousarray(beta),
                     numpy.float32(eps), _kernel_activation(self.activation))
        if sums == 'rows':
            rows_forward_kernel(_rows(x), *arguments, _rows(y), mean, var,
                                inv_std)
        else:
            forward = image_kernels(arguments[-1])[0]
            forward(_images(x), *arguments, *image_plan(x), _images(y),
                    mean, var, inv_std)
        if running_mean is not None:  # Chainer's update, as it makes it
            m = x.size // gamma.size
            adjust = m / max(m - 1., 1.)
            running_mean *= decay
            running_mean += (1 - decay) * mean
            running_var *= decay
            running_var += (1 - decay) * adjust * var
        return (y, x_layout, running_mean, running_var, mean, var, inv_std,
                None)

    def backward(self, axis, gamma, gy, x, x_layout, xp, expander, mean,
                 inv_std, eps, var, forward_data):
        # The gradient that the normalisation takes: gy, or the one an
        # activation's Chainer gradient hands on, laid out as NumPy lays
        # out gy times the mask, which is laid out as x.
        passed = gy if self.activation is None else (
            layouts.elementwise_result((gy, x), gy.dtype))
        sums = sums_along(passed)
        # A C-contiguous gradient makes gy * x_hat and the gradient
        # C-contiguous whatever x's layout (NumPy lays out the result of
        # operands that disagree in C order); another layout does so only
        # with x laid out the same.
        if sums is None or (sums == 'rows' and sums_along(x) != 'rows'):
            if self.activation is not None:
                gy = self.activation.gradient(normalised(
                    x, gamma, self.beta, mean, inv_std, expander), gy).array
            return super(FusedImpl, self).backward(
                axis, gamma, gy, x, x_layout, xp, expander, mean, inv_std,
                eps, var, forward_data)
        gx = numpy.empty_like(passed)  # as NumPy's gx is laid out
        ggamma, gbeta = (numpy.empty_like(gamma) for _ in range(2))
        inv_m = gamma.dtype.type(1. / (x.size // gamma.size))
        arguments = (gamma, numpy.ascontiguousarray(self.beta), mean,
                     inv_std, inv_m, _kernel_activation(self.activation))
        if sums == 'rows':
            rows_backward_kernel(
                numpy.ascontiguousarray(_rows(x)), _rows(gy), *arguments,
                _rows(gx), ggamma, gbeta)
        else:
            backward = image_kernels(arguments[-1])[1]
            backward(_images(x), _images(gy), *arguments, *image_plan(x),
                     _images(gx), ggamma, gbeta)
        return gx, x_layout, ggamma, gbeta


def _fused_impl(function, inputs):
    return FusedImpl()


class NormalizedActivation(bn.BatchNormalization):
    """Chainer's ``BatchNormalization`` function followed by
    ``activation`` (:class:`Relu` or :class:`HardTanh`), in the fused
    kernels' passes: one function of the graph, not two, and no pass of
    its own for the activation either way; the same bits as the two
    functions. For a gradient that is itself differentiated (double
    backpropagation), the backward is Chainer's two gradient functions.
    """

    def __init__(self, activation, eps, mean, var, decay, axis):
        super(NormalizedActivation, self).__init__(
            eps, mean, var, decay, axis=axis,
            impl_selector=lambda function, inputs: FusedImpl(activation))
        self.activation = activation

    def forward(self, inputs):
        outputs = super(NormalizedActivation, self).forward(inputs)
        self.retain_inputs((0, 1, 2))  # beta too: the backward's mask
        return outputs

    def backward(self, indexes, grad_outputs):
        x, gamma, beta = self.get_retained_inputs()
        gy, = grad_outputs
        impl = self._impl
        if chainer.config.enable_backprop:
            gy = self.activation.gradient(normalised(
                x.array, gamma.array, beta.array, self.mean, self.inv_std,
                self.expander), gy)
            impl = FusedImpl(beta=beta.array)
        return bn.BatchNormalizationGrad(
            self.eps, self.expander, self.axis, self.mean, None,
            self.inv_std, self.key_axis, impl, self.forward_data).apply(
                (x, gamma, gy))


class BatchNormalization(chainer.links.BatchNormalization):
    """``chainer.links.BatchNormalization`` whose training forward and
    backward run fused where :func:`fuses` says they apply; the same
    arguments, parameters and statistics, and the same bits."""

    def forward(self, x, activation=None, **kwargs):
        """Chainer's link's forward, then ``activation`` where given
        (:class:`Relu` or :class:`HardTanh`): where the forward is fused,
        in its pass (:class:`NormalizedActivation`)."""
        finetune = kwargs.get('finetune', False)
        if (set(kwargs) - {'finetune'} or not configuration.config.train
                or self.gamma is None
                or self.beta is None or self.avg_mean is None
                or not fuses(chainer.as_array(x), self.gamma.array,
                             self.axis)):
            y = super(BatchNormalization, self).forward(x, **kwargs)
            return y if activation is None else activation(y)
        # Chainer's link in training mode (links/normalization/
        # batch_normalization.py), with the fused implementation.
        if finetune:
            self.N += 1
            decay = 1. - 1. / self.N
        else:
            decay = self.decay
        avg_mean, avg_var = self.avg_mean, self.avg_var
        if configuration.config.in_recomputing:
            if finetune:
                self.N -= 1
            avg_mean = avg_var = None
        if activation is None:
            function = bn.BatchNormalization(
                self.eps, avg_mean, avg_var, decay, axis=self.axis,
                impl_selector=_fused_impl)
        else:
            function = NormalizedActivation(activation, self.eps, avg_mean,
                                            avg_var, decay, self.axis)
        return function.apply((x, self.gamma, self.beta))[0]
