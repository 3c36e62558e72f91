"""From counts to output bits: a hidden unit's threshold test, 64 units at
a time, and the output words it makes, in the next layer's layout.

A hidden unit fires where ``(d >= T) != flip``
(:func:`quantized_net.packed.format.unit_fires`). The kernels compare what
they count, not ``d``, against a limit computed once:

* a hidden layer counts ``p = popcount(x XOR w)``, ``d = k - 2 p``:
  ``d >= T`` exactly when ``p <= (k - T) // 2`` (:func:`pop_limits`);
* the first layer sums ``S``, the pixels where a unit's weight is +1, and
  ``t``, all its pixels, ``d = 2 S - t``: ``d >= T`` exactly when
  ``t - 2 S <= -T`` (:func:`pixel_limits`).

Either is ``value <= limit``: for 64 units one vector compare, whose lanes
are the bits of the output word (:func:`at_most`), XORed with the word of
their flips (:func:`flip_bits`).
"""
import numpy
import numba
from numba import types
from numba.extending import intrinsic

from quantized_net.packed.format import WORD_BITS, words
from quantized_net.packed.kernels import llvm_ir


def pop_limits(thresholds, k):
    """The popcount bound equivalent to ``d >= T`` for rows of ``k``
    elements: ``k - 2 pop >= T`` exactly when ``pop <= (k - T) // 2``."""
    return ((k - thresholds.astype(numpy.int64)) // 2).astype(numpy.int32)


def pixel_limits(thresholds):
    """The first layer's int32 bounds: ``2 S - t >= T`` where ``t - 2 S <=
    -T``; a ``T`` below ``-2**31 + 1`` is as low."""
    return -numpy.maximum(thresholds, -2 ** 31 + 1).astype(numpy.int32)


def whole_words(limits):
    """Bounds ``(classes, n)`` as the whole-word compares read them:
    int32 ``(classes, words(n) * 64)``, the lanes past the last unit the
    lowest int32, so that they never fire."""
    limits = numpy.atleast_2d(limits)
    out = numpy.full((len(limits), words(limits.shape[1]) * WORD_BITS),
                     numpy.iinfo(numpy.int32).min, numpy.int32)
    out[:, :limits.shape[1]] = limits
    return out


@intrinsic
def at_most(typingctx, values, limits):
    """``at_most(values, limits)``: the word whose bit ``b`` is set where
    the int32 at ``values + 4 b`` is at most the one at ``limits + 4 b``,
    ``b < 64`` (addresses)."""
    def codegen(context, builder, signature, args):
        return llvm_ir.at_most(builder, llvm_ir.word_lanes(
            builder, args[0], 32), args[1])
    return types.uint64(types.int64, types.int64), codegen


@numba.njit(inline='always')
def word_limits(limits, flip, j0, n, lim, flp):
    """The ``lim`` and ``flp`` (int32 and bool, 64 each) of units ``j0``
    to ``j0 + 63`` of ``n``: as many as there are, the rest never firing,
    so that whole words may be compared."""
    units = min(WORD_BITS, n - j0)
    lim[:] = numpy.iinfo(numpy.int32).min
    lim[:units] = limits[j0:j0 + units]
    flp[:] = False
    flp[:units] = flip[j0:j0 + units]


@numba.njit(inline='always')
def flip_bits(flp):
    """The 64 bools ``flp`` as the bits of a word: byte ``i`` of each of
    its 8 words to bit ``56 + i`` by one multiplication."""
    flips = flp.view(numpy.uint64)
    mask = numpy.uint64(0)
    for q in range(8):
        mask |= ((flips[q] * numpy.uint64(0x0102040810204080)) >>
                 numpy.uint64(56)) << numpy.uint64(8 * q)
    return mask


@numba.njit(inline='always')
def store_word(out, i, word, bits, split):
    """Output word ``word`` of row ``i``: as it is, or ``split`` into the
    avx2 layout's nibble planes: the low nibbles of its 8 bytes at byte
    ``64 (word // 4) + 8 (word % 4)`` of the row, the high ones 32 bytes
    on."""
    if not split:
        out[i, word] = bits
        return
    at = word // 4 * 8 + word % 4
    nibbles = numpy.uint64(0x0F0F0F0F0F0F0F0F)
    out[i, at] = bits & nibbles
    out[i, at + 4] = (bits >> numpy.uint64(4)) & nibbles
