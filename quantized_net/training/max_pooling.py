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
from quantized_net import c_order

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

    @kernel_cache.njit
    def window_choice(a, b, c, d):
        """The maximum of a 2 x 2 window ``a b / c d`` without NaN, as
        :func:`next_tap` takes it tap by tap (of equal values the later),
        and the index of its first maximum: compares whose results
        select, no branch."""
        top_ab = b if b >= a else a
        index_ab = 1 if b > a else 0
        top_cd = d if d >= c else c
        index_cd = 3 if d > c else 2
        return (top_cd if top_cd >= top_ab else top_ab,
                index_cd if top_cd > top_ab else index_ab)

    @kernel_cache.njit
    def pair_windows(r0, r1, y, indexes, windows):
        """The first ``windows`` 2 x 2 windows (stride 2) across the rows
        ``r0`` and ``r1``, all inside the image, into ``y`` and
        ``indexes``; whether a NaN is among their values, in which case
        what they hold is not the pooling's (the caller redoes them).

        Without NaN, a window's choice is :func:`window_choice`'s, its
        four values taken in two pairs: the row's loop then has no branch
        to mispredict (tap by tap, the branches made it four times as
        slow)."""
        nan = False
        for ox in range(windows):
            a, b = r0[2 * ox], r0[2 * ox + 1]
            c, d = r1[2 * ox], r1[2 * ox + 1]
            y[ox], indexes[ox] = window_choice(a, b, c, d)
            nan |= (a != a) | (b != b) | (c != c) | (d != d)
        return nan

    @kernel_cache.njit(parallel=True)
    def forward_kernel(x, kh, kw, sh, sw, ph, pw, lowest, y, indexes):
        """``y`` and ``indexes`` ``(n, c, out_h, out_w)`` of ``x`` ``(n, c,
        h, w)``: each window's :func:`window_max` (``lowest`` the dtype's
        :math:`-\\infty`); the ConvNets' 2 x 2 windows of stride 2 inside
        the image a row at a time (:func:`pair_windows`)."""
        n, c = x.shape[:2]
        out_h, out_w = y.shape[2:]
        h, w = x.shape[2:]
        pairs = kh == 2 and kw == 2 and sh == 2 and sw == 2 and pw == 0
        for plane in numba.prange(n * c):
            i, ch = plane // c, plane % c
            for oy in range(out_h):
                y0 = oy * sh - ph
                done = 0
                if pairs and y0 >= 0 and y0 + 2 <= h:
                    windows = min(out_w, w // 2)
                    if not pair_windows(x[i, ch, y0], x[i, ch, y0 + 1],
                                        y[i, ch, oy], indexes[i, ch, oy],
                                        windows):
                        done = windows
                for ox in range(done, out_w):
                    top, index = window_max(x, i, ch, y0, ox * sw - pw, kh,
                                            kw, lowest)
                    y[i, ch, oy, ox] = top
                    indexes[i, ch, oy, ox] = index

    @kernel_cache.njit
    def rows_forward_kernel(rows, y, indexes):
        """:func:`forward_kernel` of 2 x 2 windows of stride 2 that tile
        an image laid out channels last, as a convolution leaves it:
        ``rows`` ``(n, h, w, c)`` C-contiguous, ``y`` and ``indexes`` ``(n,
        c, h / 2, w / 2)`` C-contiguous. A window position at a time, its
        channels along the rows (a channel's window at a time, each value
        would be on a cache line of its own), each window's choice by
        :func:`window_choice`; whether a NaN is among the values, in
        which case what ``y`` and ``indexes`` hold is not the pooling's
        (the caller redoes them)."""
        n, h, w, c = rows.shape
        out_h, out_w = h // 2, w // 2
        # Flat and unsigned: numba tests a signed index for a negative
        # value at every access.
        source, tops, taps = (rows.reshape(-1), y.reshape(-1),
                              indexes.reshape(-1))
        channels, row_step = numpy.uint64(c), numpy.uint64(w * c)
        plane = numpy.uint64(out_h * out_w)
        nan = False
        for i in range(n):
            for oy in range(out_h):
                for ox in range(out_w):
                    out = numpy.uint64((i * c * out_h + oy) * out_w + ox)
                    corner = numpy.uint64(((i * h + 2 * oy) * w + 2 * ox) * c)
                    for ch in range(c):
                        at = corner + numpy.uint64(ch)
                        a, b = source[at], source[at + channels]
                        cc = source[at + row_step]
                        d = source[at + row_step + channels]
                        at = out + numpy.uint64(ch) * plane
                        tops[at], taps[at] = window_choice(a, b, cc, d)
                        nan |= (a != a) | (b != b) | (cc != cc) | (d != d)
        return nan

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

    @kernel_cache.njit(parallel=True)
    def tiled_backward_kernel(gy, indexes, gx):
        """:func:`backward_kernel` where 2 x 2 windows of stride 2 tile
        ``gx`` exactly: every input is written, ``0 + g`` at its window's
        maximum and 0 elsewhere, so ``gx`` need not be zeros first."""
        n, c = gx.shape[:2]
        out_h, out_w = gy.shape[2:]
        zero = gx.dtype.type(0)
        for plane in numba.prange(n * c):
            i, ch = plane // c, plane % c
            for oy in range(out_h):
                g, k = gy[i, ch, oy], indexes[i, ch, oy]
                r0, r1 = gx[i, ch, 2 * oy], gx[i, ch, 2 * oy + 1]
                for ox in range(out_w):
                    v = zero + g[ox]
                    r0[2 * ox] = v if k[ox] == 0 else zero
                    r0[2 * ox + 1] = v if k[ox] == 1 else zero
                    r1[2 * ox] = v if k[ox] == 2 else zero
                    r1[2 * ox + 1] = v if k[ox] == 3 else zero


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
        # x as it is laid out: a convolution's output, channels last, is
        # read in place rather than copied first, along its rows where
        # the windows tile it.
        if not (c_order.channels_last(x) and
                (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) and
                (out_h, out_w) == (h // 2, w // 2) and
                not rows_forward_kernel(x.transpose(0, 2, 3, 1), y,
                                        indexes)):
            with kernel_cache.calling_thread_only():
                forward_kernel(x, kh, kw, sh, sw, ph, pw,
                               x.dtype.type(-numpy.inf), y, indexes)
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
        gy = c_order.c_contiguous(inputs[0])
        (kh, kw), (sh, sw), (ph, pw) = func.ksize, func.stride, func.pad
        n, c, h, w = func._in_shape
        tiled = ((kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) and
                 gy.shape[2:] == (h // 2, w // 2) and h % 2 == w % 2 == 0)
        # Laid out as Chainer's: a view of the padded image its col2im
        # adds into.
        image = (numpy.empty if tiled else numpy.zeros)(
            (n, c, h + 2 * ph + sh - 1, w + 2 * pw + sw - 1), func._in_dtype)
        gx = image[:, :, ph:ph + h, pw:pw + w]
        with kernel_cache.calling_thread_only():
            if tiled:
                tiled_backward_kernel(gy, func.indexes, gx)
            else:
                backward_kernel(gy, func.indexes, kw, sh, sw, ph, pw, gx)
        return gx,


def max_pooling_2d(x, ksize, stride=None, pad=0, cover_all=True):
    """``chainer.functions.max_pooling_2d`` (without ``return_indices``),
    fused on the CPU where :meth:`MaxPooling2D.fuses`."""
    return MaxPooling2D(ksize, stride, pad, cover_all).apply((x,))[0]
