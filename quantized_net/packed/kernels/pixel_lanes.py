"""The first convolution with its filters across 16-bit vector lanes.

The first convolution sums pixel integers, not bits: ``S``, over the taps
inside the image, the pixels ``p`` (0 to 255) where a filter is +1 less
those where it is -1 (:func:`convolutions.first_limits` turns its
threshold into a bound on ``S`` for each class of border). Here a tap's
pixel is broadcast to the 32 lanes of a vector of 16-bit integers, one
lane a filter, multiplied by the filters' +-1 and added: exact while
``255 * taps`` fits 16 bits (:data:`MAX_TAPS`), with no branch and no
conversion. A tile sums 4 output positions, and compares each with its
class's bounds in registers, as :mod:`filter_lanes` does with counts, and
the same driver runs it (:func:`filter_lanes.convolution_kernel`).

The image is read in place, padded with blank pixels (0 adds nothing to
``S``): ``uint8`` ``(images, channels, height + 2 pad, width + 2 pad)``,
a tap a fixed byte offset from an output position's top-left tap
(:func:`tap_offsets`).
"""
import numpy
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net.packed.format import unpack_bits
from quantized_net.packed.kernels import llvm_ir

#: Positions a tile, and filters: one vector of 16-bit lanes.
TILE_ROWS, TILE_FILTERS = 4, 32
#: The most taps whose sums of pixels fit an int16: ``255 * 128 <
#: 2**15``.
MAX_TAPS = 128
_VECTOR = ir.VectorType(llvm_ir.I16, TILE_FILTERS)


def runs(conv, form):
    """Whether first convolution ``conv`` runs here in ``form``: its sums
    fit 16 bits, and not the scalar reference."""
    return form != 'scalar' and conv.taps() <= MAX_TAPS


def _tile_codegen(context, builder, signature, args):
    x, rows, offsets, w, w_stride, taps, limits, out = args
    at = llvm_ir.addresses(builder, x, rows, TILE_ROWS)
    # Kept in registers: LLVM promotes these slots (mem2reg).
    sums = [cgutils.alloca_once_value(builder, ir.Constant(_VECTOR, None))
            for _ in range(TILE_ROWS)]
    with cgutils.for_range(builder, taps) as loop:
        tap = llvm_ir.load(builder, llvm_ir.offset(
            builder, offsets, builder.mul(loop.index, ir.Constant(
                llvm_ir.I64, 8))), llvm_ir.I64, 8)
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


def tap_offsets(conv):
    """The byte offsets of first convolution ``conv``'s taps, in the
    file's order (channel, row, column), from an output position's
    top-left tap in the padded image: int64 ``(taps,)``."""
    channels, height, width = conv.in_shape
    k, pad = conv.ksize, conv.pad
    c, ky, kx = numpy.meshgrid(numpy.arange(channels), numpy.arange(k),
                               numpy.arange(k), indexing='ij')
    padded_width = width + 2 * pad
    return ((c * (height + 2 * pad) + ky) * padded_width + kx).reshape(
        -1).astype(numpy.int64)


def filter_signs(weights, conv):
    """The packed filters (the file's rows) as int16 +-1 ``(taps,
    lanes)``, each tap's filters together, lanes the filters rounded up
    to :data:`TILE_FILTERS`, 0 past the last."""
    lanes = -(-conv.filters // TILE_FILTERS) * TILE_FILTERS
    out = numpy.zeros((conv.taps(), lanes), numpy.int16)
    out[:, :conv.filters] = (unpack_bits(weights, conv.taps()).astype(
        numpy.int16) * 2 - 1).T
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


def padded(pixels, conv):
    """The ``uint8`` pixels ``(images, channels * height * width)`` with a
    blank border: ``(images, channels, height + 2 pad, width + 2 pad)``."""
    channels, height, width = conv.in_shape
    pad = conv.pad
    out = numpy.zeros((len(pixels), channels, height + 2 * pad,
                       width + 2 * pad), numpy.uint8)
    out[:, :, pad:pad + height, pad:pad + width] = pixels.reshape(
        (len(pixels),) + conv.in_shape)
    return out
