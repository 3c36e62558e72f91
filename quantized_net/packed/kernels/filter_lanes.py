"""A hidden layer of short rows with its filters across the vector lanes.

The popcount tiles (:mod:`tiles`) run along a row, a vector of its words a
step, and add each count's lanes together at the end: right for an MLP's
rows of hundreds of words, wasteful for a convolution's, whose rows are a
few words (``3 x 3`` taps of 32 channels: 288 bits, 4.5 words, padded to
a 512-bit vector, then reduced across the vector once per filter). Here a
row's word is broadcast instead, XORed with that word of 8 filters at
once (the weights transposed, word-major), counted and added lane by lane:
no padding of the row, no reduction, and the counts end where the
threshold compare reads them, one lane a filter
(:func:`thresholds.at_most`).

Each form's vector ``ctpop`` is LLVM's for this CPU (``vpopcntq`` with
AVX-512 VPOPCNTDQ, a nibble lookup on AVX2). The scalar form keeps the
tiles, the reference these are tested against.
"""
import numpy
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS, words
from quantized_net.packed.kernels import llvm_ir
from quantized_net.packed.kernels.thresholds import at_most

#: A tile: rows of activations, and vectors of 8 filters (the 64-bit
#: lanes of an AVX-512 vector), whose counts stay in registers over the
#: rows' words: 16 counters, 4 weight vectors and 4 broadcast words of
#: the 32 vector registers.
TILE_ROWS, TILE_VECTORS = 4, 4
#: Filters a tile: the weights are laid out in groups of this many.
TILE_FILTERS = 8 * TILE_VECTORS
#: The longest row, in words, laid across the filters: past it the tiles'
#: reduction costs less than a row's step.
MAX_ROW_WORDS = 16
_VECTOR = ir.VectorType(llvm_ir.I64, 8)
_COUNTS = ir.VectorType(llvm_ir.I32, 8)


def runs(bits, form):
    """Whether a layer of rows of ``bits`` bits runs here in ``form``:
    short rows, and not the scalar reference."""
    return form != 'scalar' and words(bits) <= MAX_ROW_WORDS


def _tile_codegen(rows):
    def codegen(context, builder, signature, args):
        (x, x_stride, x_word_stride, w, w_stride, row_words, out,
         out_stride) = args
        # Kept in registers: LLVM promotes these slots (mem2reg).
        counters = [[cgutils.alloca_once_value(
            builder, ir.Constant(_VECTOR, None))
            for _ in range(TILE_VECTORS)] for _ in range(rows)]
        with cgutils.for_range(builder, row_words) as loop:
            byte = builder.mul(loop.index, x_word_stride)
            bits = [llvm_ir.splat(builder, llvm_ir.load(
                builder, llvm_ir.offset(builder, x, byte, builder.mul(
                    x_stride, ir.Constant(llvm_ir.I64, r))),
                llvm_ir.I64, 8), _VECTOR) for r in range(rows)]
            at = llvm_ir.offset(builder, w, builder.mul(loop.index,
                                                        w_stride))
            for v in range(TILE_VECTORS):
                filters = llvm_ir.load(builder, llvm_ir.offset(
                    builder, at, 64 * v), _VECTOR, 8)
                for r in range(rows):
                    count = llvm_ir.call(builder, 'llvm.ctpop.v8i64',
                                         _VECTOR,
                                         builder.xor(bits[r], filters))
                    builder.store(builder.add(
                        builder.load(counters[r][v]), count), counters[r][v])
        for r in range(rows):
            row = llvm_ir.offset(builder, out, builder.mul(
                out_stride, ir.Constant(llvm_ir.I64, r)))
            for v in range(TILE_VECTORS):
                slot = builder.inttoptr(
                    llvm_ir.offset(builder, row, 32 * v),
                    _COUNTS.as_pointer())
                builder.store(builder.trunc(builder.load(counters[r][v]),
                                            _COUNTS), slot, align=4)
        return context.get_dummy_value()
    return codegen


def _tile_intrinsic(rows):
    def tile(typingctx, x, x_stride, x_word_stride, w, w_stride,
             row_words, out, out_stride):
        """``tile(x, x_stride, x_word_stride, w, w_stride, row_words, out,
        out_stride)``: stores ``popcount(x_r XOR w_c)`` over ``row_words``
        words in the int32 at ``out + r * out_stride + 4 c`` for the rows
        ``r`` whose word ``q`` is the uint64 at ``x + r * x_stride + q *
        x_word_stride`` and the :data:`TILE_FILTERS` filters ``c`` whose
        word ``q`` is the uint64 at ``w + q * w_stride + 8 c`` (addresses
        and strides in bytes)."""
        return (types.void(*[types.int64] * 8), _tile_codegen(rows))
    return intrinsic(tile)


#: The whole tile.
tile = _tile_intrinsic(TILE_ROWS)
#: A tile of one row: the last rows of a thread's.
tile_row = _tile_intrinsic(1)


def transposed(rows, n):
    """The ``n`` filters' packed rows ``(n, row_words)`` word-major:
    ``(row_words, lanes)``, lanes ``n`` rounded up to
    :data:`TILE_FILTERS`, 0 past the last filter."""
    lanes = -(-n // TILE_FILTERS) * TILE_FILTERS
    out = numpy.zeros((rows.shape[1], lanes), numpy.uint64)
    out[:, :n] = rows[:n].T
    return out


@kernel_cache.njit(parallel=True)
def sign_layer_kernel(x, w, limits, classes, flips, out, threads):
    """Unit ``j`` of row ``i`` of ``out`` (plain words) is +1 where
    ``(popcount(x_i XOR w_j) <= limits[classes[i % len(classes)], j])``
    XOR bit ``j`` of ``flips``; ``x`` word-major ``(words, rows)``, ``w``
    the filters :func:`transposed`, ``limits`` in whole words
    (:func:`thresholds.whole_words`)."""
    row_words, m = x.shape
    lanes = w.shape[1]
    n_words = out.shape[1]
    units = n_words * WORD_BITS
    positions = classes.shape[0]
    for thread in numba.prange(threads):
        # Lanes past the filters stay 0, and never fire.
        counts = numpy.zeros((TILE_ROWS, units), numpy.int32)
        first = m * thread // threads
        last = m * (thread + 1) // threads
        for i in range(first, last, TILE_ROWS):
            rows = min(TILE_ROWS, last - i)
            x_at = x.ctypes.data + i * 8
            for g in range(0, lanes, TILE_FILTERS):
                w_at = w.ctypes.data + g * 8
                out_at = counts.ctypes.data + g * 4
                if rows == TILE_ROWS:
                    tile(x_at, 8, m * 8, w_at, lanes * 8, row_words, out_at,
                         units * 4)
                    continue
                for r in range(rows):
                    tile_row(x_at + r * 8, 8, m * 8, w_at, lanes * 8,
                             row_words, out_at + r * units * 4, units * 4)
            for r in range(rows):
                at = limits.ctypes.data + classes[(i + r) % positions] * (
                    4 * units)
                for word in range(n_words):
                    out[i + r, word] = at_most(
                        counts.ctypes.data + 4 * (r * units +
                                                  WORD_BITS * word),
                        at + 4 * WORD_BITS * word) ^ flips[word]


def sign_layer(x, w, limits, classes, flips):
    """A hidden layer of short rows: ``uint64`` ``(m, words(n))``, plain,
    unit ``j`` of row ``i`` +1 where ``(popcount(x_i XOR w_j) <=
    limits[c, j]) != flip_j``, ``c = classes[i % len(classes)]``.

    Args:
        x: ``uint64`` ``(row_words, m)``: the packed rows word-major (word
            ``q`` of every row together, as
            :func:`convolutions.word_columns` makes them).
        w: The filters :func:`transposed`.
        limits: int32 popcount bounds ``(classes, words(n) * 64)``
            (:func:`thresholds.whole_words`).
        classes: int32, the class of each row, repeating.
        flips: ``uint64`` ``(words(n),)``: the flips as output words.
    """
    out = numpy.empty((x.shape[1], limits.shape[1] // WORD_BITS),
                      numpy.uint64)
    if out.size:
        sign_layer_kernel(numpy.ascontiguousarray(x), w, limits, classes,
                          flips, out, kernel_cache.threads())
    return out
