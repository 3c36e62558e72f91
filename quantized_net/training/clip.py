"""Chainer's clip (the hard tanh of the networks' units) with its CPU
gradient in one pass.

Chainer's ``ClipGrad`` compares the input with each bound (two passes and
two boolean arrays), multiplies them (a third) and the gradient by the
result (a fourth, converting booleans to floats). :class:`Clip` computes
the same product, :math:`g_y \\cdot 1` or :math:`g_y \\cdot 0` (so a
cancelled gradient is :math:`\\pm 0`, or NaN where it was infinite, as
Chainer's), in one numba pass; on the GPU, and for a second order
gradient, it is Chainer's, whose boolean mask it computes only then.

.. math::

    y = \\min(\\max(x, l), h), \\qquad
    g_x = g_y \\cdot 1_{l \\le x \\le h}.
"""
import numpy

from chainer.functions.math import clip as chainer_clip

from quantized_net import kernel_cache
from quantized_net.training import layouts

numba = kernel_cache.numba  # None where numba does not import


if numba is not None:
    @kernel_cache.njit
    def gradient_kernel(x, gy, low, high, one, zero, gx):
        """``gx = gy * (low <= x <= high)`` of the flat arrays, the
        condition ``one`` or ``zero`` of their dtype, as NumPy multiplies
        by a boolean."""
        for i in range(x.size):
            gx[i] = gy[i] * (one if low <= x[i] <= high else zero)


class Clip(chainer_clip.Clip):
    """Chainer's ``Clip``, whose gradient is :class:`ClipGrad`."""

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        return ClipGrad(x.array, self.x_min, self.x_max).apply(grad_outputs)


class ClipGrad(chainer_clip.ClipGrad):
    """Chainer's ``ClipGrad``, its CPU forward one pass; its mask
    ``cond`` made when the GPU forward or the backward asks for it."""

    def __init__(self, x, x_min, x_max):
        if x_min is None and x_max is None:
            raise ValueError('must set either max or min')
        self.x, self.x_min, self.x_max = x, x_min, x_max
        self._cond = None

    @property
    def cond(self):
        """Chainer's mask, as its ``ClipGrad`` makes it."""
        if self._cond is None:
            cond = True
            if self.x_min is not None:
                cond *= (self.x_min <= self.x)
            if self.x_max is not None:
                cond *= (self.x <= self.x_max)
            self._cond = cond
        return self._cond

    def forward_cpu(self, inputs):
        gy, = inputs
        x = self.x
        if not (numba is not None and isinstance(x, numpy.ndarray)
                and isinstance(gy, numpy.ndarray) and x.shape == gy.shape
                and x.dtype == gy.dtype
                and x.dtype in (numpy.float32, numpy.float64)):
            return super(ClipGrad, self).forward_cpu(inputs)
        # The bounds in the array's dtype, as NumPy compares an array with
        # a Python float; a missing one never cancels.
        t = x.dtype.type
        low = t(-numpy.inf if self.x_min is None else self.x_min)
        high = t(numpy.inf if self.x_max is None else self.x_max)
        # Laid out as NumPy lays out gy * cond, cond as it lays out x's
        # comparison.
        cond = layouts.elementwise_result((x,), numpy.bool_)
        gx = layouts.elementwise_result((gy, cond), gy.dtype)
        order = layouts.memory_order(gx)
        gradient_kernel(layouts.flat_in(order, x), layouts.flat_in(order, gy),
                        low, high, t(1), t(0), layouts.flat_in(order, gx))
        return gx,


def clip(x, x_min, x_max):
    """``chainer.functions.clip``, its CPU gradient one pass
    (:class:`ClipGrad`)."""
    return Clip(x_min, x_max).apply((x,))[0]
