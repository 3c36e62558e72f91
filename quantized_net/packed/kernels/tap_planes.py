"""A convolution's input as words of whole taps, read in place.

Laying each output position's taps side by side in memory (an im2col
of bits, :func:`convolutions.columns`) writes every input word ``ksize *
ksize`` times before it is counted once. Here the input is padded once
and cut into *planes* of words, each word a run of neighbouring taps of
one filter row, so that an output position's row of words is a fixed set
of offsets from its top-left tap (:func:`word_offsets`), the same for
every position: a kernel reads the words where they lie.

With ``C`` channels:

* ``C <= 64``: a word holds ``g = min(ksize, 64 // C)`` taps, tap ``t``
  at bit ``t * C``: runs of ``g`` taps across each filter row, and, in the
  ``ksize % g`` columns left over, runs of ``g`` taps down the column, then
  of what is left of it. 32 channels, 3 x 3: three words of two taps
  across, one of two taps down the last column and one of its last tap:
  five words a position for 4.5 words of taps.
* ``C > 64``: a tap is ``words(C)`` words, 0 bits past the last channel,
  plane ``q`` word ``q``.

The planes are ``uint64`` ``(images, height + 2 pad, planes, width + 2
pad)``, a padded row of each plane after the other, a plane's word at
``(y, x)`` the run that starts there, the border 0 bits: the -1 of the
padding, which the limits of each class of border correct for
(:mod:`borders`); the bits past a word's taps are 0 in the data and in
the filters (:func:`filter_words`), and count nothing.
"""
import collections

import numpy
import numba

from quantized_net import kernel_cache
from quantized_net.packed.format import (
    WORD_BITS, pack_signs, unpack_bits, words)
from quantized_net.packed.kernels.layouts import channels_last

#: One word of an output position's row: ``taps`` taps from ``(ky, kx)``
#: on, across the filter row or ``down`` its column, in ``plane``.
Word = collections.namedtuple('Word', 'ky kx taps plane down')


def _per_word(channels, ksize):
    per_word = min(ksize, WORD_BITS // channels)
    return (per_word,) + divmod(ksize, per_word)


def row_words(channels, ksize):
    """The words of an output position's row, in order (:class:`Word`)."""
    if channels > WORD_BITS:
        return [Word(ky, kx, 1, q, False) for ky in range(ksize)
                for kx in range(ksize) for q in range(words(channels))]
    per_word, whole, left = _per_word(channels, ksize)
    out = [Word(ky, j * per_word, per_word, 0, False)
           for ky in range(ksize) for j in range(whole)]
    for kx in range(whole * per_word, ksize):
        out += [Word(j * per_word, kx, per_word, 1, True)
                for j in range(whole)]
        out.append(Word(whole * per_word, kx, left, 2, True))
    return out


def plane_runs(channels, ksize):
    """Each plane's run: ``(taps, down)`` int64 ``(planes,)`` arrays, the
    taps a word and whether they run down a column (1) or across a row
    (0); one tap across for every plane where ``C > 64``."""
    if channels > WORD_BITS:
        n = words(channels)
        return numpy.ones(n, numpy.int64), numpy.zeros(n, numpy.int64)
    per_word, _, left = _per_word(channels, ksize)
    runs = [(per_word, 0)] + ([(per_word, 1), (left, 1)] if left else [])
    taps, down = zip(*runs)
    return numpy.array(taps, numpy.int64), numpy.array(down, numpy.int64)


def word_offsets(conv):
    """The byte offsets of an output position's row words from its
    top-left tap in the planes: int64 ``(row words,)``."""
    channels, _, width = conv.in_shape
    plane_count = len(plane_runs(channels, conv.ksize)[0])
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
        elif w.down:
            part = bits[:, w.ky:w.ky + w.taps, w.kx].reshape(
                len(weights), -1)
        else:
            part = bits[:, w.ky, w.kx:w.kx + w.taps].reshape(
                len(weights), -1)
        signs[:, n, :part.shape[1]] = part.astype(numpy.int8) * 2 - 1
    return pack_signs(signs.reshape(len(weights), -1)).reshape(
        len(weights), len(laid))


@kernel_cache.njit(parallel=True)
def planes_kernel(h, channels, pad, taps, down, out):
    """:func:`planes` into ``out`` ``(images, height + 2 pad, planes,
    width + 2 pad)``, ``taps`` and ``down`` from :func:`plane_runs`, both
    C-contiguous: each plane's padded row ORed from shifted input rows, a
    vector loop a tap."""
    images, height, width, n_words = h.shape
    _, padded_height, n_planes, padded_width = out.shape
    wide = channels > WORD_BITS
    flat_h, flat_out = h.reshape(-1), out.reshape(-1)
    step = numpy.uint64(n_words)
    for task in numba.prange(images * padded_height):
        i = task // padded_height
        y = task % padded_height - pad
        for p in range(n_planes):
            row = ((i * padded_height + y + pad) * n_planes + p) * \
                padded_width
            flat_out[row:row + padded_width] = 0
            for t in range(taps[p]):
                # Tap t of the run that starts at row y, column x: input
                # row y + dy, column x - pad + dx.
                dy = t if down[p] else 0
                dx = t - dy
                if y + dy < 0 or y + dy >= height:
                    continue
                shift = numpy.uint64(0 if wide else t * channels)
                start = max(0, pad - dx)
                # Unsigned indexes: numba tests a signed one for a
                # negative value at every access, and the loop does not
                # vectorize (2.8x slower at batch 100 of 28 x 28 x 32).
                at = numpy.uint64(row + start)
                source = numpy.uint64(
                    ((i * height + y + dy) * width + start - pad + dx) *
                    n_words + (p if wide else 0))
                for x in range(min(padded_width, width + pad - dx) - start):
                    ux = numpy.uint64(x)
                    flat_out[at + ux] |= flat_h[source + ux * step] << shift


def planes(h, conv):
    """The packed activations ``h`` ``(images, height, width,
    words(channels))`` as the planes of convolution ``conv``'s input."""
    channels, height, width = conv.in_shape
    taps, down = plane_runs(channels, conv.ksize)
    out = numpy.empty((len(h), height + 2 * conv.pad, len(taps),
                       width + 2 * conv.pad), numpy.uint64)
    if out.size:
        kernel_cache.threads()  # planes_kernel is parallel
        planes_kernel(numpy.ascontiguousarray(h), channels, conv.pad, taps,
                      down, out)
    return out
