"""A convolution on bits with its filters across the vector lanes.

The popcount tiles (:mod:`tiles`) run along a row, a vector of its words a
step, and add each count's lanes together at the end: right for an MLP's
rows of hundreds of words, wasteful for a convolution's, whose rows are a
few words (``3 x 3`` taps of 32 channels: 288 bits, 4.5 words, padded to
a 512-bit vector, then reduced across the vector once per filter), and
whose rows would have to be laid side by side in memory first. Here a
row's word is broadcast instead, XORed with that word of 8 filters at
once (the weights transposed, word-major), counted and added lane by lane:
no padding of the row, no reduction, and the counts are compared with
their limits where they are, in registers, one lane a filter.

The rows are read in place from the input's planes
(:mod:`tap_planes`), 4 output positions a tile: 4 along an output row,
or, for a 2 x 2 max-pooling, the window's 4, whose bits are ORed (a
pooled unit fires where any of its window's sums passes the threshold,
or, where the normalisation reverses the order, where none does: the
OR, then the flip). No column of taps and no unpooled output is
written.

Each form's vector ``ctpop`` is LLVM's for this CPU (``vpopcntq`` with
AVX-512 VPOPCNTDQ, a nibble lookup on AVX2). The scalar form keeps the
tiles on columns, the reference these are tested against.
"""
import numpy
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net import kernel_cache
from quantized_net.packed.kernels import llvm_ir, pixel_lanes

#: A tile: rows of activations, and vectors of 8 filters (the 64-bit
#: lanes of an AVX-512 vector), whose counts stay in registers over the
#: rows' words: 16 counters, 4 weight vectors and 4 broadcast words of
#: the 32 vector registers.
TILE_ROWS, TILE_VECTORS = 4, 4
#: Filters a tile: the weights are laid out in groups of this many.
TILE_FILTERS = 8 * TILE_VECTORS
#: The driver's kind of tile for bits (:func:`tile`).
BITS = 0
_VECTOR = ir.VectorType(llvm_ir.I64, 8)


def runs(form):
    """Whether the convolutions run across the lanes in ``form``: all but
    the scalar reference's, for rows of any length: a tile's filters are
    256 bytes a word of the row, 18 KB for 3 x 3 taps of 512 channels,
    read from L1."""
    return form != 'scalar'


def _tile_codegen(context, builder, signature, args):
    x, rows, offsets, w, w_stride, row_words, limits, out = args
    at = llvm_ir.addresses(builder, x, rows, TILE_ROWS)
    # Kept in registers: LLVM promotes these slots (mem2reg).
    counters = [[cgutils.alloca_once_value(
        builder, ir.Constant(_VECTOR, None))
        for _ in range(TILE_VECTORS)] for _ in range(TILE_ROWS)]
    with cgutils.for_range(builder, row_words) as loop:
        word = llvm_ir.int64_at(builder, offsets, loop.index)
        bits = [llvm_ir.splat(builder, llvm_ir.load(
            builder, builder.add(at[r], word), llvm_ir.I64, 8), _VECTOR)
            for r in range(TILE_ROWS)]
        filters_at = llvm_ir.offset(builder, w, builder.mul(loop.index,
                                                            w_stride))
        for v in range(TILE_VECTORS):
            filters = llvm_ir.load(builder, llvm_ir.offset(
                builder, filters_at, 64 * v), _VECTOR, 8)
            for r in range(TILE_ROWS):
                count = llvm_ir.call(builder, 'llvm.ctpop.v8i64', _VECTOR,
                                     builder.xor(bits[r], filters))
                builder.store(builder.add(
                    builder.load(counters[r][v]), count), counters[r][v])
    for r in range(TILE_ROWS):
        row_limits = llvm_ir.load(builder, llvm_ir.offset(
            builder, limits, 8 * r), llvm_ir.I64, 8)
        fired = ir.Constant(llvm_ir.I32, 0)
        for v in range(TILE_VECTORS):
            below = builder.icmp_signed('<=', builder.load(counters[r][v]),
                                        llvm_ir.load(builder, llvm_ir.offset(
                                            builder, row_limits, 64 * v),
                                            _VECTOR, 8))
            fired = builder.or_(fired, builder.shl(
                builder.zext(builder.bitcast(below, llvm_ir.I8),
                             llvm_ir.I32),
                ir.Constant(llvm_ir.I32, 8 * v)))
        llvm_ir.store(builder, fired, llvm_ir.offset(builder, out, 4 * r), 4)
    return context.get_dummy_value()


@intrinsic
def tile(typingctx, x, rows, offsets, w, w_stride, row_words, limits, out):
    """``tile(x, rows, offsets, w, w_stride, row_words, limits, out)``:
    for :data:`TILE_ROWS` rows and :data:`TILE_FILTERS` filters, stores
    the bits ``popcount(x_r XOR w_c) <= limit_rc`` (bit ``c`` of the
    uint32 at ``out + 4 r``). Word ``q`` of row ``r`` is the uint64 at
    ``x + rows[r] + offsets[q]`` (``rows``, ``offsets``: the addresses of
    int64 byte offsets), of filter ``c`` at ``w + q * w_stride + 8 c``;
    ``limits`` the address of the rows' addresses of their
    :data:`TILE_FILTERS` int64 limits. The counts and the compares stay
    in registers."""
    return types.void(*[types.int64] * 8), _tile_codegen


def transposed(rows, n):
    """The ``n`` filters' packed rows ``(n, row_words)`` word-major:
    ``(row_words, lanes)``, lanes ``n`` rounded up to
    :data:`TILE_FILTERS`, 0 past the last filter."""
    lanes = -(-n // TILE_FILTERS) * TILE_FILTERS
    out = numpy.zeros((rows.shape[1], lanes), numpy.uint64)
    out[:, :n] = rows[:n].T
    return out


def lane_limits(limits):
    """Popcount bounds ``(classes, filters)`` as the tile compares them:
    int64 ``(classes, lanes)``, lanes the filters rounded up to
    :data:`TILE_FILTERS`, -1 past the last filter (a count is never
    below 0, so those never fire)."""
    limits = numpy.atleast_2d(limits)
    lanes = -(-limits.shape[1] // TILE_FILTERS) * TILE_FILTERS
    out = numpy.full((len(limits), lanes), -1, numpy.int64)
    out[:, :limits.shape[1]] = limits
    return out


_CODEGENS = {BITS: _tile_codegen, **pixel_lanes.CODEGENS}
#: The kinds of tile: :data:`BITS`, and :data:`pixel_lanes.SUMS` and
#: :data:`pixel_lanes.QUADS` for pixels.
KINDS = tuple(_CODEGENS)


@intrinsic
def lane_tile(typingctx, kind, x, rows, offsets, w, w_stride, steps, limits,
              out):
    """``lane_tile(kind, x, rows, ...)``: the tile of ``kind``, a literal
    of :data:`KINDS` (:func:`tile`, :func:`pixel_lanes.tile`,
    :func:`pixel_lanes.quad_tile`), on their arguments. Each kernel holds
    its own kind's instructions alone: a CPU without AVX-512 VNNI cannot
    compile ``quad_tile``, nor a kernel that holds it on a branch never
    taken."""
    if not (isinstance(kind, types.IntegerLiteral)
            and kind.literal_value in _CODEGENS):
        raise numba.core.errors.TypingError(
            'kind must be a literal kind of tile, one of {}'.format(KINDS))
    codegen = _CODEGENS[kind.literal_value]

    def generate(context, builder, signature, args):
        return codegen(context, builder, signature, args[1:])
    return types.void(kind, *[types.int64] * 8), generate


@kernel_cache.njit(parallel=True)
def convolution_kernel(x, offsets, w, limits, classes, flips, stride,
                       conv_width, pool, kind, out):
    """A convolution across the lanes into ``out``'s ``uint32`` halves of
    words ``(images, out_h, out_w, 2 words)``, ``flips`` the flip words'
    halves: the tiles of ``kind``, a literal of :data:`KINDS`
    (:func:`lane_tile`), on the input ``x`` (the planes, or the padded
    pixels),
    taps or words at ``offsets``, ``w`` and ``limits`` ``(classes,
    lanes)`` laid out for them. Pooled (``pool`` 2), a tile's 4 rows are
    a window's positions and its bits their OR; else 4 positions along an
    output row, the last tile repeating its last position."""
    # An image, a padded row and a column of x, in bytes.
    image_bytes = x.strides[0]
    row_bytes = x.strides[1] if kind == BITS else x.strides[2]
    column_bytes = x.strides[3]
    row_words = offsets.shape[0]
    lanes = w.shape[1]
    groups = lanes // TILE_FILTERS
    _, out_h, out_w, halves = out.shape
    w_group = TILE_FILTERS * w.strides[1]
    limits_group = TILE_FILTERS * limits.itemsize
    for task in numba.prange(out.shape[0] * out_h):
        i = task // out_h
        y = task % out_h
        rows = numpy.empty(TILE_ROWS, numpy.int64)
        positions = numpy.empty(TILE_ROWS, numpy.int64)
        row_limits = numpy.empty(TILE_ROWS, numpy.int64)
        bits = numpy.empty(TILE_ROWS, numpy.uint32)
        x_at = x.ctypes.data + i * image_bytes
        across = out_w if pool else (out_w + TILE_ROWS - 1) // TILE_ROWS
        for across_at in range(across):
            # The first output column of the tile, unpooled.
            first = across_at * TILE_ROWS
            for r in range(TILE_ROWS):
                if pool:
                    cy = y * 2 + r // 2
                    cx = across_at * 2 + r % 2
                else:
                    cy = y
                    cx = min(first + r, out_w - 1)
                positions[r] = cy * conv_width + cx
                rows[r] = cy * stride * row_bytes + cx * stride * column_bytes
            for g in range(groups):
                for r in range(TILE_ROWS):
                    row_limits[r] = (limits.ctypes.data + g * limits_group +
                                     classes[positions[r]] *
                                     limits.strides[0])
                lane_tile(kind, x_at, rows.ctypes.data, offsets.ctypes.data,
                          w.ctypes.data + g * w_group, w.strides[0],
                          row_words, row_limits.ctypes.data,
                          bits.ctypes.data)
                if pool:
                    out[i, y, across_at, g] = (
                        bits[0] | bits[1] | bits[2] | bits[3]) ^ flips[g]
                    continue
                for r in range(min(TILE_ROWS, out_w - first)):
                    out[i, y, first + r, g] = bits[r] ^ flips[g]
            # The halves past the last filter: no unit, 0 bits.
            for g in range(groups, halves):
                if pool:
                    out[i, y, across_at, g] = flips[g]
                    continue
                for r in range(min(TILE_ROWS, out_w - first)):
                    out[i, y, first + r, g] = flips[g]


def _convolution_of(kind):
    # The kernel with its kind a constant, a literal to lane_tile (numba
    # caches a closure under the values of its cells).
    @kernel_cache.njit
    def kernel(x, offsets, w, limits, classes, flips, stride, conv_width,
               pool, out):
        convolution_kernel(x, offsets, w, limits, classes, flips, stride,
                           conv_width, pool, kind, out)
    return kernel


#: ``CONVOLUTIONS[kind](x, offsets, w, limits, classes, flips, stride,
#: conv_width, pool, out)``: :func:`convolution_kernel` of ``kind``.
CONVOLUTIONS = {kind: _convolution_of(kind) for kind in KINDS}


def convolution(x, conv, w, offsets, limits, classes, flips, pool,
                kind=BITS):
    """Convolution ``conv`` across the lanes and, where it pools 2 x 2,
    its pooling: ``uint64`` ``(images, out_h, out_w, words(filters))``,
    filter ``j`` of a position +1 where its test passes (the OR over a
    pooled window) XOR bit ``j`` of ``flips``, the test ``popcount(x XOR
    w_j) <= limits[c, j]``, or for pixels ``S_j >= limits[c, j]``
    (:mod:`pixel_lanes`), ``c`` the position's class.

    Args:
        x: The input: its planes (:func:`tap_planes.planes`), or its
            padded pixels (:func:`pixel_lanes.padded`).
        conv: The convolution (:class:`format.Convolution`).
        w: The filters: their words (:func:`tap_planes.filter_words`)
            :func:`transposed`, or :func:`pixel_lanes.filter_signs` of the
            tile's form.
        offsets: :func:`tap_planes.word_offsets`, or
            :func:`pixel_lanes.tap_offsets` of the tile's form.
        limits: :func:`lane_limits` of the classes' limits, or
            :func:`pixel_lanes.bounds`.
        classes: int32, the class of each unpooled output position
            (:func:`borders.tap_classes`).
        flips: ``uint64`` ``(words(filters),)``: the flips as output words.
        pool: 2 to pool 2 x 2 (whole windows), else 0.
        kind: The tiles: :data:`BITS`, or :func:`pixel_lanes.tile_kind`
            for pixels.
    """
    _, conv_height, conv_width = conv.conv_shape()
    out = numpy.empty((len(x), conv_height // (pool or 1),
                       conv_width // (pool or 1), len(flips)), numpy.uint64)
    if out.size:
        kernel_cache.threads()  # the kernel is parallel
        CONVOLUTIONS[kind](x, offsets, w, limits, classes,
                           flips.view(numpy.uint32), conv.stride, conv_width,
                           pool, out.view(numpy.uint32))
    return out
