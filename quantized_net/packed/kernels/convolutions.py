"""A binarized ConvNet's layers on the CPU.

The activations between convolutions are packed along the channels:
``uint64`` ``(images, height, width, words(channels))``, channel ``c`` of
a position bit ``c % 64`` of its word ``c // 64``, 0 bits past the last
channel. A convolution lays each output position's taps side by side, a
row of ``ksize * ksize * channels`` bits (:func:`columns`), against
filters laid out the same way (:func:`layouts.channels_last`), and the
hidden layers' kernel (:func:`hidden_layers.sign_layer`) counts
``popcount(x XOR w)`` over the row, each output position against the
limits of its class of border (:mod:`borders`). The first convolution
sums the pixel integers times the filters' signs in float32 vectors, exact
(:func:`first_convolution`).

Max-pooling follows on the bits (:func:`pooled`): the trained network
pooled the sums before a monotonic normalisation and sign, so a pooled
unit fires where any of its window's sums passes the threshold, or, where
the normalisation reverses the order (``flip``), where none does: an OR of
the unflipped bits, then the flip.
"""
import numpy
import numba

from quantized_net import kernel_cache
from quantized_net.packed.format import (
    WORD_BITS, pack_signs, unpack_bits, words)
from quantized_net.packed.kernels.layouts import layout, layout_words
from quantized_net.packed.kernels.thresholds import at_most


@kernel_cache.njit(parallel=True)
def columns_kernel(h, channels, ksize, stride, pad, out_h, out_w, out):
    """Row ``(i, y, x)`` of ``out`` (zeros) gets the ``channels`` bits of
    each tap of output position ``(y, x)`` of image ``i`` that lies inside
    ``h``, tap ``t`` at bit ``t * channels`` of the row: no padding between
    taps, so a narrow layer's row takes fewer vector steps."""
    images, height, width, n_words = h.shape
    row_words = out.shape[1]
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        for x in range(out_w):
            row = task * out_w + x
            for ky in range(ksize):
                iy = y * stride - pad + ky
                if iy < 0 or iy >= height:
                    continue
                for kx in range(ksize):
                    ix = x * stride - pad + kx
                    if ix < 0 or ix >= width:
                        continue
                    start = (ky * ksize + kx) * channels
                    for q in range(n_words):
                        value = h[i, iy, ix, q]
                        bit = start + q * WORD_BITS
                        at = bit // WORD_BITS
                        shift = bit % WORD_BITS
                        out[row, at] |= value << numpy.uint64(shift)
                        if shift and at + 1 < row_words:
                            out[row, at + 1] |= value >> numpy.uint64(
                                WORD_BITS - shift)


def columns(h, conv, form):
    """The taps of every output position of convolution ``conv`` of the
    packed activations ``h`` ``(images, height, width, words(channels))``,
    in ``form``'s layout (:func:`layouts.layout`): ``(images * out_h *
    out_w, words)``, each row the taps' channels one after another
    (:func:`layouts.channels_last`, not aligned), taps outside the image
    0."""
    _, out_h, out_w = conv.conv_shape()
    bits = conv.taps()
    # The avx2 layout's nibble planes are made from the plain words; the
    # others are the plain words, zero-padded, and written in place.
    row_words = (words(bits) if form == 'avx2' else
                 layout_words(bits, form))
    out = numpy.zeros((len(h) * out_h * out_w, row_words), numpy.uint64)
    if out.size:
        kernel_cache.threads()  # columns_kernel is parallel
        columns_kernel(numpy.ascontiguousarray(h), conv.in_shape[0],
                       conv.ksize, conv.stride, conv.pad, out_h, out_w, out)
    return layout(out, form) if form == 'avx2' else out


#: The first convolution's filters are summed this many at a time (the
#: float32 lanes of an AVX-512 vector): a layer of 32 filters sums 32
#: lanes, not its output word's 64.
FIRST_LANES = 16


def first_filters(w, conv):
    """The first convolution's packed filters as float32 +-1 ``(channels,
    ksize, ksize, lanes)``, each tap's filters together, 0 past the last
    filter up to a multiple of :data:`FIRST_LANES`, as
    :func:`first_convolution_kernel` reads them."""
    signs = unpack_bits(w, conv.taps()).astype(numpy.float32) * 2 - 1
    c, k = conv.in_shape[0], conv.ksize
    lanes = -(-conv.filters // FIRST_LANES) * FIRST_LANES
    out = numpy.zeros((c, k, k, lanes), numpy.float32)
    out[..., :conv.filters] = signs.reshape(-1, c, k, k).transpose(
        1, 2, 3, 0)
    return out


def first_limits(thresholds):
    """The first convolution's int32 bounds on ``-d``, ``words(filters) *
    64`` of them: ``d >= T`` where ``-d <= -T``; none past the last
    filter."""
    limits = numpy.full(words(len(thresholds)) * WORD_BITS,
                        numpy.iinfo(numpy.int32).min, numpy.int32)
    limits[:len(thresholds)] = -numpy.maximum(
        thresholds.astype(numpy.int64), -2 ** 31 + 1)
    return limits


@kernel_cache.njit(parallel=True)
def first_convolution_kernel(values, filters, limits, flips, stride, pad,
                             out):
    """The first convolution's output bits ``out`` ``(images, out_h,
    out_w, words)``: filter ``j`` fires where ``(-d <= limits_j)`` XOR its
    flip bit, ``d`` the sum over the taps inside the image of the float32
    integer ``values`` ``(images, channels, height, width)`` times the
    +-1 ``filters`` (:func:`first_filters`): exact, every partial sum an
    integer below 2**24. A tap's value multiplies all the filters at
    once, a vector loop; taps of value 0 are skipped. The lanes past the
    filters' never fire (their limits are the lowest int32)."""
    images, channels, height, width = values.shape
    ksize = filters.shape[1]
    units = filters.shape[3]
    _, out_h, out_w, n_words = out.shape
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        sums = numpy.empty(units, numpy.float32)
        negated = numpy.zeros(n_words * WORD_BITS, numpy.int32)
        for x in range(out_w):
            sums[:] = 0
            for c in range(channels):
                for ky in range(ksize):
                    iy = y * stride - pad + ky
                    if iy < 0 or iy >= height:
                        continue
                    for kx in range(ksize):
                        ix = x * stride - pad + kx
                        if ix < 0 or ix >= width:
                            continue
                        value = values[i, c, iy, ix]
                        if value == 0:
                            continue
                        for j in range(units):
                            sums[j] += value * filters[c, ky, kx, j]
            for j in range(units):
                negated[j] = -numpy.int32(sums[j])
            for q in range(n_words):
                out[i, y, x, q] = at_most(
                    negated.ctypes.data + 4 * WORD_BITS * q,
                    limits.ctypes.data + 4 * WORD_BITS * q) ^ flips[q]


def first_convolution(values, filters, limits, flips, conv):
    """The first convolution of the float32 pixel integers ``values``
    ``(images, channels * height * width)``, its bits unpooled:
    :func:`first_convolution_kernel`."""
    _, out_h, out_w = conv.conv_shape()
    out = numpy.empty((len(values), out_h, out_w, len(flips)), numpy.uint64)
    if out.size:
        kernel_cache.threads()  # the kernel is parallel
        first_convolution_kernel(
            numpy.ascontiguousarray(values).reshape(
                (len(values),) + conv.in_shape),
            filters, limits, flips, conv.stride, conv.pad, out)
    return out


def flip_words(flip):
    """The bool flips of the filters as the words of a position's
    channels."""
    return pack_signs(numpy.where(flip, 1, -1)[None, :])[0]


def pooled(h, pool, flips):
    """``pool`` x ``pool`` max-pooling on the bits ``h`` ``(images,
    height, width, words)`` at stride ``pool``, whole windows only: the OR
    of each window, XOR the flips' words (:func:`flip_words`)."""
    images, height, width, n_words = h.shape
    out_h, out_w = height // pool, width // pool
    windows = h[:, :out_h * pool, :out_w * pool].reshape(
        images, out_h, pool, out_w, pool, n_words)
    return numpy.bitwise_or.reduce(numpy.bitwise_or.reduce(
        windows, axis=4), axis=2) ^ flips
