"""A convolution's input as words of whole taps, read in place.

Laying each output position's taps side by side in memory (an im2col
of bits, :func:`convolutions.columns`) writes every input word ``ksize *
ksize`` times before it is counted once. Here the input is padded once
and cut into *planes* of words, each word a run of neighbouring taps of
one filter row, so that an output position's row of words is a fixed set
of offsets from its top-left tap (:func:`word_offsets`), the same for
every position: a kernel reads the words where they lie.

With ``C`` channels:

* ``C <= 64``: a word holds ``g = min(ksize, 64 // C)`` taps of a filter
  row, tap ``t`` at bit ``t * C``; a filter row of ``ksize`` taps is
  ``ksize // g`` such words and, where ``ksize % g`` taps are left, one
  word of those from a second plane. 32 channels, 3 x 3: six words a
  position, two taps and one tap a filter row.
* ``C > 64``: a tap is ``words(C)`` words, 0 bits past the last channel,
  plane ``q`` word ``q``.

The planes are ``uint64`` ``(images, height + 2 pad, planes, width + 2
pad)``, a padded row of each plane after the other, the border 0 bits: the -1 of the padding, which the limits of
each class of border correct for (:mod:`borders`); the bits past a word's
taps are 0 in the data and in the filters (:func:`filter_words`), and
count nothing.
"""
import collections

import numpy
import numba

from quantized_net import kernel_cache
from quantized_net.packed.format import (
    WORD_BITS, pack_signs, unpack_bits, words)
from quantized_net.packed.kernels.layouts import channels_last

#: One word of an output position's row: ``taps`` taps from ``(ky, kx)``
#: on, in ``plane``.
Word = collections.namedtuple('Word', 'ky kx taps plane')


def row_words(channels, ksize):
    """The words of an output position's row, in order (:class:`Word`)."""
    if channels > WORD_BITS:
        return [Word(ky, kx, 1, q) for ky in range(ksize)
                for kx in range(ksize) for q in range(words(channels))]
    per_word = min(ksize, WORD_BITS // channels)
    whole, left = divmod(ksize, per_word)
    out = []
    for ky in range(ksize):
        out += [Word(ky, j * per_word, per_word, 0) for j in range(whole)]
        if left:
            out.append(Word(ky, whole * per_word, left, 1))
    return out


def plane_taps(channels, ksize):
    """Taps a word of each plane: ``(planes,)`` int64, 0 for the planes of
    a tap's words past the first where ``C > 64``."""
    if channels > WORD_BITS:
        return numpy.zeros(words(channels), numpy.int64)
    per_word = min(ksize, WORD_BITS // channels)
    left = ksize % per_word
    return numpy.array([per_word] + ([left] if left else []), numpy.int64)


def word_offsets(conv):
    """The byte offsets of an output position's row words from its
    top-left tap in the planes: int64 ``(row words,)``."""
    channels, _, width = conv.in_shape
    plane_count = len(plane_taps(channels, conv.ksize))
    padded_width = width + 2 * conv.pad
    return numpy.array([((w.ky * plane_count + w.plane) * padded_width +
                         w.kx) * 8
                        for w in row_words(channels, conv.ksize)],
                       numpy.int64)


def filter_words(weights, conv):
    """The packed filters (the file's rows) as rows of words in the
    order of :func:`row_words`: ``uint64`` ``(filters, row words)``."""
    channels, k = conv.in_shape[0], conv.ksize
    rows = channels_last(weights, channels, k * k, aligned=False)
    bits = unpack_bits(rows, conv.taps()).reshape(len(weights), k, k,
                                                  channels)
    laid = row_words(channels, k)
    signs = -numpy.ones((len(weights), len(laid), WORD_BITS), numpy.int8)
    for n, w in enumerate(laid):
        if channels > WORD_BITS:
            at = w.plane * WORD_BITS
            part = bits[:, w.ky, w.kx, at:at + WORD_BITS]
        else:
            part = bits[:, w.ky, w.kx:w.kx + w.taps].reshape(
                len(weights), -1)
        signs[:, n, :part.shape[1]] = part.astype(numpy.int8) * 2 - 1
    return pack_signs(signs.reshape(len(weights), -1)).reshape(
        len(weights), len(laid))


@kernel_cache.njit(parallel=True)
def planes_kernel(h, channels, pad, taps, out):
    """:func:`planes` into ``out`` ``(images, height + 2 pad, planes,
    width + 2 pad)``, ``taps`` from :func:`plane_taps`: each plane's
    padded row ORed from shifted input rows, a vector loop a tap."""
    images, height, width, _ = h.shape
    _, padded_height, n_planes, padded_width = out.shape
    for task in numba.prange(images * padded_height):
        i = task // padded_height
        y = task % padded_height - pad
        for p in range(n_planes):
            row = out[i, y + pad, p]
            row[:] = 0
            if y < 0 or y >= height:
                continue
            wide = channels > WORD_BITS
            for t in range(1 if wide else taps[p]):
                word = p if wide else 0
                shift = numpy.uint64(0 if wide else t * channels)
                # The padded columns x whose tap t lies inside the image.
                for x in range(max(0, pad - t), min(padded_width,
                                                    width + pad - t)):
                    row[x] |= h[i, y, x - pad + t, word] << shift


def planes(h, conv):
    """The packed activations ``h`` ``(images, height, width,
    words(channels))`` as the planes of convolution ``conv``'s input."""
    channels, height, width = conv.in_shape
    taps = plane_taps(channels, conv.ksize)
    out = numpy.empty((len(h), height + 2 * conv.pad, len(taps),
                       width + 2 * conv.pad), numpy.uint64)
    if out.size:
        kernel_cache.threads()  # planes_kernel is parallel
        planes_kernel(numpy.ascontiguousarray(h), channels, conv.pad, taps,
                      out)
    return out
