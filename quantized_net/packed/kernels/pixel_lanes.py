"""The first convolution with its filters across integer vector lanes.

The first convolution sums pixel integers, not bits: ``S``, over the taps
inside the image, the pixels ``p`` (0 to 255) where a filter is +1 less
those where it is -1 (:func:`convolutions.first_limits` turns its
threshold into a bound on ``S`` for each class of border). A tile sums 4
output positions against 32 filters, one lane a filter, and compares each
sum with its class's bounds in registers, as :mod:`filter_lanes` does
with counts; the same driver runs it
(:func:`filter_lanes.convolution_kernel`). Exact while ``255 * taps``
fits the 16 bits of the bounds (:data:`MAX_TAPS`), with no branch and no
conversion. Two tiles:

* :func:`tile` (the avx2 form): a tap's pixel broadcast to 32 lanes of
  16-bit integers, multiplied by the filters' +-1 and added;
* :func:`quad_tile` (the avx512 form, AVX-512 VNNI): four taps of a filter
  row at once, their pixel bytes broadcast and multiplied by the filters'
  four +-1 bytes (0 past the row's last tap) and summed into 16 lanes of
  32-bit integers by one ``vpdpbusd``.

The image is read in place, padded with blank pixels (0 adds nothing to
``S``): ``uint8`` ``(images, channels, height + 2 pad, width + 2 pad +
3)``, the 3 columns more so that four bytes may be read from the last
tap of any row; a tap, or a run of four, a fixed byte offset from an
output position's top-left tap (:func:`tap_offsets`).
"""
import numpy
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net import kernel_cache
from quantized_net.packed.format import unpack_bits
from quantized_net.packed.kernels import llvm_ir

#: Positions a tile, and filters: one vector of 16-bit lanes, two of
#: 32-bit ones.
TILE_ROWS, TILE_FILTERS = 4, 32
#: Taps a ``vpdpbusd`` lane sums; blank columns past the padded image.
QUAD = 4
SLACK = QUAD - 1
#: Which tile the driver runs: :func:`tile`, :func:`quad_tile`.
SUMS, QUADS = 1, 2
#: The most taps whose sums of pixels fit an int16: ``255 * 128 <
#: 2**15``.
MAX_TAPS = 128
_VECTOR = ir.VectorType(llvm_ir.I16, TILE_FILTERS)


def runs(conv, form):
    """Whether first convolution ``conv`` runs here in ``form``: its sums
    fit 16 bits, and not the scalar reference."""
    return form != 'scalar' and conv.taps() <= MAX_TAPS


def tile_kind(form):
    """The tile of ``form``: :data:`QUADS` for avx512, else :data:`SUMS`."""
    return QUADS if form == 'avx512' else SUMS


def _tile_codegen(context, builder, signature, args):
    x, rows, offsets, w, w_stride, taps, limits, out = args
    at = llvm_ir.addresses(builder, x, rows, TILE_ROWS)
    # Kept in registers: LLVM promotes these slots (mem2reg).
    sums = [cgutils.alloca_once_value(builder, ir.Constant(_VECTOR, None))
            for _ in range(TILE_ROWS)]
    with cgutils.for_range(builder, taps) as loop:
        tap = llvm_ir.int64_at(builder, offsets, loop.index)
        signs = llvm_ir.load(builder, llvm_ir.offset(
            builder, w, builder.mul(loop.index, w_stride)), _VECTOR, 2)
        for r in range(TILE_ROWS):
            pixel = builder.zext(llvm_ir.load(
                builder, builder.add(at[r], tap), llvm_ir.I8, 1),
                llvm_ir.I16)
            builder.store(builder.add(builder.load(sums[r]), builder.mul(
                llvm_ir.splat(builder, pixel, _VECTOR), signs)), sums[r])
    for r in range(TILE_ROWS):
        needed = llvm_ir.load(builder, llvm_ir.load(
            builder, llvm_ir.offset(builder, limits, 8 * r), llvm_ir.I64, 8),
            _VECTOR, 2)
        fired = builder.bitcast(builder.icmp_signed(
            '>=', builder.load(sums[r]), needed), llvm_ir.I32)
        llvm_ir.store(builder, fired, llvm_ir.offset(builder, out, 4 * r), 4)
    return context.get_dummy_value()


@intrinsic
def tile(typingctx, x, rows, offsets, w, w_stride, taps, limits, out):
    """``tile(x, rows, offsets, w, w_stride, taps, limits, out)``: for
    :data:`TILE_ROWS` output positions and :data:`TILE_FILTERS` filters,
    stores the bits ``S_rc >= needed_rc`` (bit ``c`` of the uint32 at
    ``out + 4 r``), ``S_rc`` the sum over the taps ``q`` of the uint8 at
    ``x + rows[r] + offsets[q]`` times filter ``c``'s int16 at ``w + q *
    w_stride + 2 c`` (``rows``, ``offsets``: the addresses of int64 byte
    offsets); ``limits`` the address of the rows' addresses of their
    :data:`TILE_FILTERS` int16 bounds. As :func:`filter_lanes.tile`."""
    return types.void(*[types.int64] * 8), _tile_codegen


_QUAD_VECTOR = ir.VectorType(llvm_ir.I32, TILE_FILTERS // 2)


def _quad_tile_codegen(context, builder, signature, args):
    x, rows, offsets, w, w_stride, quads, limits, out = args
    at = llvm_ir.addresses(builder, x, rows, TILE_ROWS)
    sums = [[cgutils.alloca_once_value(builder, ir.Constant(
        _QUAD_VECTOR, None)) for _ in range(2)] for _ in range(TILE_ROWS)]
    with cgutils.for_range(builder, quads) as loop:
        quad = llvm_ir.int64_at(builder, offsets, loop.index)
        filters_at = llvm_ir.offset(builder, w, builder.mul(loop.index,
                                                            w_stride))
        signs = [llvm_ir.load(builder, llvm_ir.offset(
            builder, filters_at, 64 * half), _QUAD_VECTOR, 4)
            for half in range(2)]
        for r in range(TILE_ROWS):
            pixels = llvm_ir.splat(builder, llvm_ir.load(
                builder, builder.add(at[r], quad), llvm_ir.I32, 1),
                _QUAD_VECTOR)
            for half in range(2):
                builder.store(llvm_ir.call(
                    builder, 'llvm.x86.avx512.vpdpbusd.512', _QUAD_VECTOR,
                    builder.load(sums[r][half]), pixels, signs[half]),
                    sums[r][half])
    for r in range(TILE_ROWS):
        row_limits = llvm_ir.load(builder, llvm_ir.offset(
            builder, limits, 8 * r), llvm_ir.I64, 8)
        fired = ir.Constant(llvm_ir.I32, 0)
        for half in range(2):
            needed = builder.sext(llvm_ir.load(
                builder, llvm_ir.offset(builder, row_limits, 32 * half),
                ir.VectorType(llvm_ir.I16, TILE_FILTERS // 2), 2),
                _QUAD_VECTOR)
            bits = builder.bitcast(builder.icmp_signed(
                '>=', builder.load(sums[r][half]), needed), llvm_ir.I16)
            fired = builder.or_(fired, builder.shl(
                builder.zext(bits, llvm_ir.I32),
                ir.Constant(llvm_ir.I32, 16 * half)))
        llvm_ir.store(builder, fired, llvm_ir.offset(builder, out, 4 * r), 4)
    return context.get_dummy_value()


@intrinsic
def quad_tile(typingctx, x, rows, offsets, w, w_stride, quads, limits,
              out):
    """``quad_tile(x, rows, offsets, w, w_stride, quads, limits, out)``:
    :func:`tile` four taps a step (AVX-512 VNNI): the ``quads`` runs of
    four taps at ``x + rows[r] + offsets[q]``, four uint8 pixels, against
    filter ``c``'s four int8 signs at ``w + q * w_stride + 4 c``."""
    return types.void(*[types.int64] * 8), _quad_tile_codegen


#: The code generators of the tiles, by kind, for a driver that picks one
#: at compile time (:func:`filter_lanes.lane_tile`).
CODEGENS = {SUMS: _tile_codegen, QUADS: _quad_tile_codegen}


def tap_runs(conv, size):
    """The runs of ``size`` taps along the filter rows (the last of a row
    shorter where ``size`` does not divide it), in the file's order
    (channel, row, column): ``(channel, row, first column)`` each."""
    k = conv.ksize
    return [(c, ky, kx) for c in range(conv.in_shape[0])
            for ky in range(k) for kx in range(0, k, size)]


def run_signs(weights, conv, size):
    """The packed filters (the file's rows) as int8 +-1 signs of their
    runs of ``size`` taps (:func:`tap_runs`): ``(runs, lanes, size)``,
    lanes the filters rounded up to :data:`TILE_FILTERS`, 0 past a row's
    last tap and past the last filter."""
    lanes = -(-conv.filters // TILE_FILTERS) * TILE_FILTERS
    k = conv.ksize
    signs = (unpack_bits(weights, conv.taps()).astype(numpy.int8) * 2 -
             1).reshape(conv.filters, -1, k, k)
    runs = tap_runs(conv, size)
    out = numpy.zeros((len(runs), lanes, size), numpy.int8)
    for q, (c, ky, kx) in enumerate(runs):
        run = signs[:, c, ky, kx:kx + size]
        out[q, :conv.filters, :run.shape[1]] = run
    return out


def tap_offsets(conv, form):
    """The byte offsets of first convolution ``conv``'s taps in the file's
    order (channel, row, column), or for :data:`QUADS` its runs of four
    taps, from an output position's top-left tap in the padded image:
    int64 ``(taps,)``."""
    channels, height, width = conv.in_shape
    k, pad = conv.ksize, conv.pad
    padded_width = width + 2 * pad + SLACK
    if tile_kind(form) == QUADS:
        taps = tap_runs(conv, QUAD)
    else:
        taps = [(c, ky, kx) for c in range(channels) for ky in range(k)
                for kx in range(k)]
    return numpy.array([(c * (height + 2 * pad) + ky) * padded_width + kx
                        for c, ky, kx in taps], numpy.int64)


def filter_signs(weights, conv, form):
    """The packed filters (the file's rows) as +-1 integers, each tap's
    filters together, lanes the filters rounded up to
    :data:`TILE_FILTERS`, 0 past the last: int16 ``(taps, lanes)``, or
    for :data:`QUADS` int8 ``(runs of four taps, lanes, 4)``, 0 past the
    last tap of a filter row."""
    if tile_kind(form) == QUADS:
        return run_signs(weights, conv, QUAD)
    lanes = -(-conv.filters // TILE_FILTERS) * TILE_FILTERS
    signs = unpack_bits(weights, conv.taps()).astype(numpy.int16) * 2 - 1
    out = numpy.zeros((conv.taps(), lanes), numpy.int16)
    out[:, :conv.filters] = signs.T
    return out


def bounds(limits, filters):
    """:func:`convolutions.first_limits`' bounds on ``-S`` as bounds on
    ``S``, int16 ``(classes, lanes)``: a unit fires where ``S >=
    -limit``; a bound past what ``MAX_TAPS`` pixels can sum is as far,
    and the lanes past the last filter never fire."""
    lanes = -(-filters // TILE_FILTERS) * TILE_FILTERS
    info = numpy.iinfo(numpy.int16)
    out = numpy.full((len(limits), lanes), info.max, numpy.int16)
    out[:, :filters] = numpy.clip(-limits[:, :filters].astype(numpy.int64),
                                  info.min, info.max)
    return out


@kernel_cache.njit
def padded_kernel(pixels, channels, height, width, pad):
    """:func:`padded` of the pixels of ``channels`` x ``height`` x
    ``width`` images, padded by ``pad``."""
    m = pixels.shape[0]
    out = numpy.zeros((m, channels, height + 2 * pad,
                       width + 2 * pad + SLACK), numpy.uint8)
    for i in range(m):
        for c in range(channels):
            for y in range(height):
                at = (c * height + y) * width
                out[i, c, y + pad, pad:pad + width] = pixels[i, at:at + width]
    return out


def padded(pixels, conv):
    """The ``uint8`` pixels ``(images, channels * height * width)`` with a
    blank border: ``(images, channels, height + 2 pad, width + 2 pad +
    SLACK)``."""
    return padded_kernel(numpy.ascontiguousarray(pixels),
                         *conv.in_shape, conv.pad)
