"""A binarized ConvNet's layers on the CPU.

The activations between convolutions are packed along the channels:
``uint64`` ``(images, height, width, words(channels))``, channel ``c`` of
a position bit ``c % 64`` of its word ``c // 64``, 0 bits past the last
channel. A convolution counts ``popcount(x XOR w)`` over each output
position's taps, against the limits of its class of border
(:mod:`borders`): across the filter lanes, reading the taps in place
(:mod:`filter_lanes`, :mod:`tap_planes`), or in the scalar reference form
with the taps laid side by side, a row of ``ksize * ksize * channels``
bits (:func:`columns`) against filters laid out the same way
(:func:`layouts.channels_last`), by the hidden layers'
:func:`hidden_layers.sign_layer`. The scalar form's first convolution
sums the pixel integers times the filters' signs in float32 vectors,
exact, skipping blank pixels (:func:`first_convolution`); the others'
runs across 16-bit lanes (:mod:`pixel_lanes`).

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
from quantized_net.packed.kernels import borders
from quantized_net.packed.kernels.thresholds import at_most, whole_words


@kernel_cache.njit(parallel=True)
def columns_kernel(h, channels, ksize, stride, pad, out_h, out_w, out):
    """Row ``(i, y, x)`` of ``out`` gets the ``channels`` bits of each tap
    of output position ``(y, x)`` of image ``i``, tap ``t`` at bit ``t *
    channels`` of the row, 0 bits for a tap outside ``h`` and past the
    last tap: no padding between taps, so a narrow layer's row takes fewer
    vector steps. A row is written word after word, each once, from bits
    gathered in a register."""
    images, height, width, n_words = h.shape
    row_words = out.shape[1]
    last_bits = channels - (n_words - 1) * WORD_BITS
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        for x in range(out_w):
            row = task * out_w + x
            at = 0
            fill = 0
            gathered = numpy.uint64(0)
            for ky in range(ksize):
                iy = y * stride - pad + ky
                for kx in range(ksize):
                    ix = x * stride - pad + kx
                    inside = 0 <= iy < height and 0 <= ix < width
                    for q in range(n_words):
                        value = h[i, iy, ix, q] if inside else numpy.uint64(
                            0)
                        bits = WORD_BITS if q < n_words - 1 else last_bits
                        gathered |= value << numpy.uint64(fill)
                        fill += bits
                        if fill >= WORD_BITS:
                            out[row, at] = gathered
                            at += 1
                            fill -= WORD_BITS
                            gathered = value >> numpy.uint64(
                                bits - fill) if fill else numpy.uint64(0)
            if fill:
                out[row, at] = gathered
                at += 1
            for q in range(at, row_words):
                out[row, q] = 0


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
    out = numpy.empty((len(h) * out_h * out_w, row_words), numpy.uint64)
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


def first_limits(filters, thresholds, conv, inside, value):
    """The first convolution's int32 bounds on ``-S``, ``(n_classes,
    words(filters) * 64)``, one row per class of taps ``inside``
    (:func:`borders.tap_classes`); the lanes past the filters never fire.

    ``S`` is the sum, over the taps inside the image, of the pixels ``p``
    (0 to 255) where the filter is +1, minus those where it is -1. The
    unit's inputs are ``a p + b`` (``value``, :data:`format.PIXEL_VALUES`),
    so ``d = a S + b W``, ``W`` the class's sum of the filter's signs
    inside, and ``d >= T`` exactly when ``S >= ceil((T - b W) / a)``: a
    blank pixel adds nothing to ``S`` whatever ``b`` is.
    """
    a, b = value
    # A tap's sum of signs over the channels: its +1 weights less its -1.
    tap_sums = 2 * borders.tap_ones(filters, conv) - conv.in_shape[0]
    inside_sums = inside.astype(numpy.int64).dot(tap_sums.T)
    needed = -((inside_sums * b - thresholds.astype(numpy.int64)) // a)
    info = numpy.iinfo(numpy.int32)
    return whole_words(numpy.clip(-needed, info.min, info.max).astype(
        numpy.int32))


@kernel_cache.njit(parallel=True)
def first_convolution_kernel(pixels, filters, limits, classes, blank, flips,
                             stride, pad, out):
    """The first convolution's output bits ``out`` ``(images, out_h,
    out_w, words)``: filter ``j`` at a position of class ``c`` fires where
    ``(-S <= limits[c, j])`` XOR its flip bit, ``S`` the sum over the taps
    inside the image of the float32 integer ``pixels`` ``(images,
    channels, height, width)`` times the +-1 ``filters``
    (:func:`first_filters`): exact, every partial sum an integer below
    2**24. A tap's pixel multiplies all the filters at once, a vector
    loop; blank pixels are skipped, and a position with none but blank
    ones takes its class's ``blank`` words (``S = 0``)."""
    images, channels, height, width = pixels.shape
    ksize = filters.shape[1]
    units = filters.shape[3]
    _, out_h, out_w, n_words = out.shape
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        sums = numpy.empty(units, numpy.float32)
        negated = numpy.zeros(n_words * WORD_BITS, numpy.int32)
        for x in range(out_w):
            c = classes[y * out_w + x]
            seen = False
            for ch in range(channels):
                for ky in range(ksize):
                    iy = y * stride - pad + ky
                    if iy < 0 or iy >= height:
                        continue
                    for kx in range(ksize):
                        ix = x * stride - pad + kx
                        if ix < 0 or ix >= width:
                            continue
                        value = pixels[i, ch, iy, ix]
                        if value == 0:
                            continue
                        if not seen:
                            sums[:] = 0
                            seen = True
                        for j in range(units):
                            sums[j] += value * filters[ch, ky, kx, j]
            if not seen:
                for q in range(n_words):
                    out[i, y, x, q] = blank[c, q]
                continue
            for j in range(units):
                negated[j] = -numpy.int32(sums[j])
            at = limits.ctypes.data + 4 * c * n_words * WORD_BITS
            for q in range(n_words):
                out[i, y, x, q] = at_most(
                    negated.ctypes.data + 4 * WORD_BITS * q,
                    at + 4 * WORD_BITS * q) ^ flips[q]


def blank_words(limits, flips):
    """The output words, one row per class, of a first-convolution
    position whose taps are all blank (``S = 0``): ``0 <= limit`` XOR the
    ``flips`` words, for :func:`first_limits`' ``limits``."""
    return pack_signs(limits) ^ flips


def first_convolution(pixels, filters, limits, classes, blank, flips,
                      conv):
    """The first convolution of the ``uint8`` pixels ``(images, channels *
    height * width)``, its bits unpooled: :func:`first_convolution_kernel`,
    with ``limits`` from :func:`first_limits`, ``classes`` from
    :func:`borders.tap_classes` and ``blank`` from :func:`blank_words`
    of the same ``flips``."""
    _, out_h, out_w = conv.conv_shape()
    out = numpy.empty((len(pixels), out_h, out_w, len(flips)),
                      numpy.uint64)
    if out.size:
        kernel_cache.threads()  # the kernel is parallel
        first_convolution_kernel(
            pixels.astype(numpy.float32).reshape(
                (len(pixels),) + conv.in_shape),
            filters, limits, classes, blank, flips, conv.stride, conv.pad,
            out)
    return out


def flip_words(flip):
    """The bool flips of the filters as the words of a position's
    channels."""
    return pack_signs(numpy.where(flip, 1, -1)[None, :])[0]


@kernel_cache.njit(parallel=True)
def pooled_kernel(h, pool, flips, out):
    """:func:`pooled` into ``out``."""
    images, out_h, out_w, n_words = out.shape
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        for x in range(out_w):
            for q in range(n_words):
                bits = numpy.uint64(0)
                for dy in range(pool):
                    for dx in range(pool):
                        bits |= h[i, y * pool + dy, x * pool + dx, q]
                out[i, y, x, q] = bits ^ flips[q]


def pooled(h, pool, flips):
    """``pool`` x ``pool`` max-pooling on the bits ``h`` ``(images,
    height, width, words)`` at stride ``pool``, whole windows only: the OR
    of each window, XOR the flips' words (:func:`flip_words`)."""
    images, height, width, n_words = h.shape
    out = numpy.empty((images, height // pool, width // pool, n_words),
                      numpy.uint64)
    if out.size:
        kernel_cache.threads()  # pooled_kernel is parallel
        pooled_kernel(numpy.ascontiguousarray(h), pool, flips, out)
    return out
