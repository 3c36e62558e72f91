"""How the CPU kernels lay out their operands, form by form.

The packed rows of :mod:`quantized_net.packed.format` (bit ``k % 64`` of
word ``k // 64``) are laid out for each form's tile (:func:`layout`):

``scalar``
    The packed words as they are.
``avx512``
    The packed words, zero-padded to whole 512-bit vectors.
``avx2``
    Nibble planes: each 32 bytes of packed bits, zero-padded to whole 256
    bits, become 32 bytes of their low four bits and 32 of their high four,
    so that ``x XOR w`` of two planes indexes ``vpshufb``'s table directly.
    A batch of one image reads the weights as the packed bits instead,
    half the bytes, and splits them in registers (:data:`PACKED_BATCH`).

Each layer writes its outputs in the layout the next one reads
(:func:`thresholds.store_word`). Zero padding adds nothing to any popcount
or sum. The first layer's operands, the same in every form, are the
pixels as pairs (:func:`pixel_pairs`) and the weights as 0/1 byte masks of
pixel pairs (:func:`pixel_masks`).
"""
import collections
import math

import numpy

from quantized_net.packed.format import (
    WORD_BITS, pack_signs, unpack_bits, words)
from quantized_net.packed.kernels.blocking import MASK_UNITS, TILE

#: Bytes of a vector step of each form's tile.
VECTOR_BYTES = {'avx512': 64, 'avx2': 64, 'scalar': 8}
#: Packed bits in a vector step of each form (held in VECTOR_BYTES bytes:
#: twice as many in the avx2 nibble planes).
STEP_BITS = {'avx512': 512, 'avx2': 256, 'scalar': 64}
#: Batches up to this size read the avx2 weights as packed bits, split in
#: registers: a batch of one is bound by fetching the weights, and this
#: halves their bytes; from four images on, the splitting costs more than
#: it saves.
PACKED_BATCH = 1


def aligned_zeros(shape, dtype=numpy.uint64):
    """Zeros whose data starts on a 64-byte cache line, as rows of whole
    vectors then do: a vector load that straddles two lines costs two. For
    what is built once: it costs microseconds a call, as much as a layer
    of one image, so the activations are plain arrays."""
    dtype = numpy.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = numpy.zeros(size + 64, numpy.uint8)
    start = -raw.__array_interface__['data'][0] % 64
    return raw[start:start + size].view(dtype).reshape(shape)


def layout_words(bits, form):
    """``uint64`` words of a row of ``bits`` packed bits in ``form``'s
    layout."""
    steps = -(-bits // STEP_BITS[form])
    return steps * VECTOR_BYTES[form] // 8


def layout(a, form, rows=None):
    """Packed ``uint64`` rows ``a`` in ``form``'s layout: zero words up to
    whole vectors and, for ``avx2``, split into nibble planes; with zero
    rows up to ``rows``."""
    m, n_words = a.shape
    out = aligned_zeros((max(m, rows or 0),
                         layout_words(n_words * WORD_BITS, form)))
    if form != 'avx2':
        out[:m, :n_words] = a
        return out
    steps = out.shape[1] // 8  # 32 bytes of bits in 64 of planes a step
    padded = numpy.zeros((m, steps * 4), numpy.uint64)
    padded[:, :n_words] = a
    data = padded.view(numpy.uint8).reshape(m, steps, 1, 32)
    planes = out.view(numpy.uint8).reshape(len(out), steps, 2, 32)
    planes[:m, :, :1] = data & 15
    planes[:m, :, 1:] = data >> 4
    return out


def channels_last(w, channels, positions, aligned=True):
    """Packed rows of ``channels * positions`` bits in Chainer's order
    (channel, then position) with each position's channels together:
    ``aligned``, runs of ``words(channels)`` words, 0 bits past the last
    channel (the first fully connected layer after a convolution, the
    positions the pixels of its output, as the activations lie), or
    otherwise ``channels`` bits after ``channels`` bits (a convolution's
    filters, the positions its taps, as the CPU lays out its columns)."""
    bits = unpack_bits(w, channels * positions).reshape(
        len(w), channels, positions).transpose(0, 2, 1)
    width = words(channels) * WORD_BITS if aligned else channels
    signs = -numpy.ones((len(w), positions, width), numpy.int8)
    signs[:, :, :channels] = bits * 2 - 1
    return pack_signs(signs.reshape(len(w), -1))


#: A hidden or last layer's weights: ``layout``, the form's layout
#: (:func:`layout`), and ``bits``, for the avx2 form its packed bits in
#: 32-byte steps (the other forms' ``layout`` again), both with zero rows
#: up to a whole tile.
Weights = collections.namedtuple('Weights', 'layout bits')


def weights(w, n, form):
    """:class:`Weights` of the packed weight rows ``w`` of ``n`` units."""
    nr = TILE[form][1]
    rows = -(-n // nr) * nr
    laid_out = layout(w, form, rows=rows)
    if form != 'avx2':
        return Weights(laid_out, laid_out)
    bits = aligned_zeros((rows, laid_out.shape[1] // 2))
    bits[:len(w), :w.shape[1]] = w
    return Weights(laid_out, bits)


def weight_rows(w, batch):
    """The rows of :class:`Weights` ``w`` that a batch of ``batch`` images
    reads."""
    return w.bits if batch <= PACKED_BATCH else w.layout


def pixel_masks(w, n_in):
    """The first layer's weights: ``uint8`` ``(groups, pairs, 2 *
    MASK_UNITS)``, ``[g, p, 2 u + h]`` 1 where unit ``g * MASK_UNITS + u``
    has weight +1 on input ``2 p + h``, else 0 (an odd last input is paired
    with a zero one, units past the last have no +1 weight).

    Args:
        w: Packed weight signs, ``uint64`` ``(n, words(n_in))``.
        n_in (int): Inputs per unit.
    """
    groups, pairs = -(-len(w) // MASK_UNITS), -(-n_in // 2)
    signs = numpy.zeros((groups * MASK_UNITS, 2 * pairs), numpy.uint8)
    signs[:len(w), :n_in] = unpack_bits(w, n_in)
    masks = aligned_zeros((groups, pairs, 2 * MASK_UNITS), numpy.uint8)
    masks[:] = signs.reshape(groups, MASK_UNITS, pairs, 2).transpose(
        0, 2, 1, 3).reshape(groups, pairs, 2 * MASK_UNITS)
    return masks


def pixel_pairs(pixels):
    """``uint8`` pixels ``(m, n_in)`` as uint16 pairs ``(m, pairs)``:
    pixel ``2 t`` in the low byte of pair ``t``, an odd last pixel paired
    with a zero one.

    Raises:
        TypeError: The pixels are not ``uint8``.
    """
    if pixels.dtype != numpy.uint8:
        raise TypeError('first_layer takes uint8 pixels, not {}'.format(
            pixels.dtype))
    pixels = numpy.ascontiguousarray(pixels)
    if pixels.shape[1] % 2:
        pixels = numpy.pad(pixels, ((0, 0), (0, 1)))
    pairs = pixels.view('<u2')
    return pairs.astype(numpy.uint16, copy=False)
