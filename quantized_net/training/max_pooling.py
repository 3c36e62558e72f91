"""Chainer's 2-D max-pooling with its CPU forward and backward each one
compiled pass, where the windows do not overlap.

Chainer's CPU max-pooling copies every window into columns (padded with
:math:`-\\infty`), takes their maximum and, in another pass, its index;
its backward writes the gradient into a zeroed array of columns and adds
them back into an image (``col2im``). Where no two windows share an input
(the stride at least the window, in each direction) each input receives
at most one output's gradient, so :class:`MaxPooling2D` computes the same
outputs (of 0 and -0 the later, as ``numpy.maximum`` takes them), the same
indexes (the first maximum of a window, in the window's row-major order,
NaN above all as ``numpy.argmax`` has it) and the same
gradient, :math:`0 + g` at each window's maximum and 0 elsewhere, in one
numba pass over the input a direction. Elsewhere (overlapping windows,
the GPU, iDeep, no numba) it is Chainer's; the double backward is
Chainer's, on the same indexes.

For a window :math:`W` of output :math:`(i, j)`:

.. math::

    y_{ij} = \\max_{(p, q) \\in W} x_{pq}, \\qquad
    \\frac{\\partial L}{\\partial x_{pq}} = \\sum_{ij:\\ (p, q) =
    \\arg\\max_W x} \\frac{\\partial L}{\\partial y_{ij}}.
"""
import numpy

from chainer.backends import intel64
from chainer.functions.pooling import max_pooling_nd
from chainer.utils import conv

from quantized_net import kernel_cache

numba = kernel_cache.numba  # None where numba does not import


if numba is not None:
    @kernel_cache.njit
    def next_tap(top, best, index, v, k):
        """``(top, best, index)`` after the window's tap ``k`` of value
        ``v``: ``top`` as ``numpy.maximum`` takes it (of equal values, 0
        and -0, the later; NaN over all), ``best`` and its ``index`` as
        ``numpy.argmax`` (the first maximum; the first NaN)."""
        if not (top > v or top != top):
            top = v
        if v > best or (v != v and best == best):
            best = v
            index = k
        return top, best, index

    @kernel_cache.njit
    def window_max(x, i, ch, y0, x0, kh, kw, lowest):
        """The maximum of the ``kh x kw`` window of ``x[i, ch]`` from ``(y0,
        x0)`` and the index ``ky * kw + kx`` of its first maximum, tap by
        tap (:func:`next_tap`); taps past the border, padded, are
        ``lowest``."""
        h, w = x.shape[2:]
        if y0 >= 0 and x0 >= 0 and y0 + kh <= h and x0 + kw <= w:
            # Inside the image: no tap is padding.
            top = best = x[i, ch, y0, x0]
            index = 0
            for ky in range(kh):
                for kx in range(1 if ky == 0 else 0, kw):
                    top, best, index = next_tap(
                        top, best, index, x[i, ch, y0 + ky, x0 + kx],
                        ky * kw + kx)
            return top, index
        top = best = lowest
        index = 0
        for ky in range(kh):
            iy = y0 + ky
            for kx in range(kw):
                ix = x0 + kx
                v = lowest
                if 0 <= iy < h and 0 <= ix < w:
                    v = x[i, ch, iy, ix]
                if ky == 0 and kx == 0:
                    top = best = v
                    continue
                top, best, index = next_tap(top, best, index, v,
                                            ky * kw + kx)
        return top, index

    @kernel_cache.njit(parallel=True)
    def forward_kernel(x, kh, kw, sh, sw, ph, pw, lowest, y, indexes):
        """``y`` and ``indexes`` ``(n, c, out_h, out_w)`` of ``x`` ``(n, c,
        h, w)``: each window's :func:`window_max` (``lowest`` the dtype's
        :math:`-\\infty`), a 2 x 2 window inside the image unrolled."""
        n, c = x.shape[:2]
        out_h, out_w = y.shape[2:]
        h, w = x.shape[2:]
        for plane in numba.prange(n * c):
            i, ch = plane // c, plane % c
            for oy in range(out_h):
                y0 = oy * sh - ph
                for ox in range(out_w):
                    x0 = ox * sw - pw
                    if (kh == 2 and kw == 2 and y0 >= 0 and x0 >= 0
                            and y0 + 2 <= h and x0 + 2 <= w):
                        # The ConvNets' windows, unrolled.
                        top = best = x[i, ch, y0, x0]
                        index = 0
                        for k in (1, 2, 3):
                            top, best, index = next_tap(
                                top, best, index,
                                x[i, ch, y0 + k // 2, x0 + k % 2], k)
                    else:
                        top, index = window_max(x, i, ch, y0, x0, kh, kw,
                                                lowest)
                    y[i, ch, oy, ox] = top
                    indexes[i, ch, oy, ox] = index

    @kernel_cache.njit(parallel=True)
    def backward_kernel(gy, indexes, kw, sh, sw, ph, pw, gx):
        """Adds each output's gradient ``gy`` to the input of ``gx``
        (zeros, ``(n, c, h, w)``) at its window's maximum: inputs past
        the border (padding) take none."""
        n, c, h, w = gx.shape
        out_h, out_w = gy.shape[2:]
        for plane in numba.prange(n * c):
            i, ch = plane // c, plane % c
            for oy in range(out_h):
                for ox in range(out_w):
                    k = indexes[i, ch, oy, ox]
                    iy = oy * sh - ph + k // kw
                    ix = ox * sw - pw + k % kw
                    if 0 <= iy < h and 0 <= ix < w:
                        gx[i, ch, iy, ix] += gy[i, ch, oy, ox]


class MaxPooling2D(max_pooling_nd.MaxPoolingND):
    """Chainer's ``MaxPoolingND`` of two dimensions, whose CPU forward
    and backward are one pass each where :meth:`fuses`."""

    #: Whether the forward was the pass (the gradient's is then too).
    fused = False

    def __init__(self, ksize, stride=None, pad=0, cover_all=True):
        super(MaxPooling2D, self).__init__(2, ksize, stride, pad, cover_all)

    def fuses(self, x):
        """Whether the pass computes Chainer's pooling of ``x``: a float32
        or float64 array on the CPU, windows that share no input, without
        iDeep."""
        return (numba is not None and isinstance(x, numpy.ndarray)
                and x.ndim == 4 and x.size < 2 ** 31
                and x.dtype in (numpy.float32, numpy.float64)
                and all(s >= k for s, k in zip(self.stride, self.ksize))
                and not intel64.should_use_ideep('>=auto'))

    def forward_cpu(self, inputs):
        x, = inputs
        if not self.fuses(x):
            return super(MaxPooling2D, self).forward_cpu(inputs)
        (kh, kw), (sh, sw), (ph, pw) = self.ksize, self.stride, self.pad
        n, c, h, w = x.shape
        out_h, out_w = (
            conv.get_conv_outsize(size, k, s, p, cover_all=self.cover_all)
            for size, k, s, p in ((h, kh, sh, ph), (w, kw, sw, pw)))
        y = numpy.empty((n, c, out_h, out_w), x.dtype)
        indexes = numpy.empty((n, c, out_h, out_w), numpy.intp)
        with kernel_cache.calling_thread_only():
            forward_kernel(numpy.ascontiguousarray(x), kh, kw, sh, sw, ph,
                           pw, x.dtype.type(-numpy.inf), y, indexes)
        # What Chainer's backward and double backward read.
        self._in_shape, self._in_dtype = x.shape, x.dtype
        self.indexes = indexes
        self.fused = True
        return y,

    def backward(self, indexes, gy):
        return MaxPooling2DGrad(self).apply(gy)


class MaxPooling2DGrad(max_pooling_nd.MaxPoolingNDGrad):
    """Chainer's gradient of max-pooling, its CPU forward one pass where
    the pooling's was."""

    def forward_cpu(self, inputs):
        func = self.func
        if not (isinstance(func, MaxPooling2D) and func.fused):
            return super(MaxPooling2DGrad, self).forward_cpu(inputs)
        gy, = inputs
        (_, kw), (sh, sw), (ph, pw) = func.ksize, func.stride, func.pad
        gx = numpy.zeros(func._in_shape, func._in_dtype)
        with kernel_cache.calling_thread_only():
            backward_kernel(numpy.ascontiguousarray(gy), func.indexes, kw,
                            sh, sw, ph, pw, gx)
        return gx,


def max_pooling_2d(x, ksize, stride=None, pad=0, cover_all=True):
    """``chainer.functions.max_pooling_2d`` (without ``return_indices``),
    fused on the CPU where :meth:`MaxPooling2D.fuses`."""
    return MaxPooling2D(ksize, stride, pad, cover_all).apply((x,))[0]
