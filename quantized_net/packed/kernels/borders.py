"""The border of a convolution padded with zeros, for kernels that count
on bits.

A kernel lays each output position's taps side by side, a row of bits
(:func:`layouts.channels_last`), and a tap outside the image is a run of
0 bits: -1 in the +-1 domain, where the trained network padded with
zeros, which add nothing. The whole row's count ``p = popcount(x XOR w)``
then differs from the count inside the image by the +1 weights of the taps
outside: with ``n`` taps inside, ``C`` channels and ``o`` those +1
weights,

.. math::

    d = C n - 2 (p - o),

so each output position compares ``p`` with a limit of its own class of
taps inside (:func:`tap_classes`, :func:`class_limits`): nine classes for
a 3 x 3 filter padded by one, the interior and eight borders. The CPU's
kernels and the GPU's use the same classes.
"""
import numpy

from quantized_net.packed.format import unpack_bits


def tap_classes(conv):
    """Which taps of convolution ``conv`` lie inside the image, by output
    position: ``(classes, inside)``, int32 ``classes`` the class of each
    position (``height * width`` of the convolution's output, row by row),
    bool ``inside`` ``(n_classes, ksize * ksize)`` the taps inside for
    each class."""
    _, height, width = conv.in_shape
    _, out_h, out_w = conv.conv_shape()
    taps = numpy.arange(conv.ksize) - conv.pad

    def inside(size, out):
        at = numpy.arange(out)[:, None] * conv.stride + taps
        return (at >= 0) & (at < size)
    rows, cols = inside(height, out_h), inside(width, out_w)
    masks = (rows[:, None, :, None] & cols[None, :, None, :]).reshape(
        out_h * out_w, conv.ksize ** 2)
    kinds, classes = numpy.unique(masks, axis=0, return_inverse=True)
    return classes.reshape(-1).astype(numpy.int32), kinds


def tap_ones(filters, conv):
    """The +1 weights of each tap of each packed filter (the file's rows),
    over the channels: int64 ``(filters, ksize * ksize)``."""
    channels = conv.in_shape[0]
    return unpack_bits(filters, conv.taps()).reshape(
        len(filters), channels, conv.ksize ** 2).sum(axis=1,
                                                     dtype=numpy.int64)


def offsets(filters, conv, inside):
    """``C n + 2 o`` for each class of taps ``inside`` (:func:`tap_classes`)
    and filter ``(n_classes, filters)``, int64: ``n`` the class's taps
    inside, ``o`` the +1 weights of its taps outside in the packed
    ``filters`` (the file's rows), ``C`` the channels. A row's ``d`` is
    this minus twice its whole count, however its bits are laid out."""
    outside = (~inside).astype(numpy.int64).dot(tap_ones(filters, conv).T)
    n = inside.sum(axis=1, dtype=numpy.int64)[:, None]
    return conv.in_shape[0] * n + 2 * outside


def class_limits(filters, thresholds, conv, inside):
    """The popcount bounds ``(n_classes, filters)`` equivalent to ``d >=
    T`` for each class of taps ``inside``: ``d = C n - 2 (p - o)``
    (:func:`offsets`), so ``d >= T`` exactly when ``p <= (C n + 2 o - T)
    // 2``."""
    limits = (offsets(filters, conv, inside) -
              thresholds.astype(numpy.int64)) // 2
    info = numpy.iinfo(numpy.int32)
    return numpy.clip(limits, info.min, info.max).astype(numpy.int32)
