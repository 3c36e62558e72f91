"""Convolutions of stride 1 with their output positions across the vector
lanes: the avx2 form's, on bits counted by nibble lookups and on pixels
summed in pairs.

Without a vector popcount, counting ``x XOR w`` costs AVX2 a lookup of
each nibble in a 16-entry table (``vpshufb``) and as much again around it:
masks, shifts, xors and a horizontal sum, nine instructions for 256
multiply-adds (:mod:`filter_lanes`). Here the XOR goes into the table
instead. For filter ``f`` and one nibble ``n`` of its taps, the table
``T_fn[i] = popcount(i XOR w_fn)`` is 16 bytes, and 32 output positions'
nibbles ``n`` of their inputs, one a byte lane, index it: one ``vpshufb``
and one byte add count 128 multiply-adds, and the positions' nibbles,
split once, serve every filter.

With stride 1, output position ``(y, x)`` reads tap ``(ky, kx)`` at
``(y + ky, x + kx)`` of the padded input: in the input's *byte planes*
(:func:`byte_planes`: each byte of the channels' bits a plane, its padded
rows of ``width + 2 pad`` bytes one after the other), 32 positions in a
row of that flattening ``y * (width + 2 pad) + x`` read 32 neighbouring
bytes of each plane, the same offset from the first position for all
(:func:`tap_offsets`). Positions past an output row's end (in the
padding's columns) are counted and never read back. The border is 0
bits, as in :mod:`tap_planes`, and the limits of each class of border
correct for it (:mod:`borders`); channels past the last are 0 bits in
the data and in the filters, and count nothing.

A tile counts 64 positions (two vectors, each table loaded once for both;
the last of a layer one vector where that covers it) for 32 filters, in
byte lanes widened to 16 bits every 31 taps' bytes (each byte counts at
most 8), compares the counts with each position's limit
(:func:`position_limits`) and stores a position's 32 bits as one uint32;
pooling ORs them after, a row at a time.

The first convolution sums pixels (:mod:`pixel_lanes` has the sums and
their bounds) the same way: its *pixel planes* (:func:`pixel_planes`)
hold each position's pixel beside its right neighbour's, so that one load
reads 16 positions' pairs of taps along a filter row, and one
``vpmaddubsw`` multiplies both by a filter's two signs and adds them
(:func:`pixel_signs`, 0 for the tap past an odd row's end).
"""
import numpy
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net import kernel_cache
from quantized_net.packed.format import unpack_bits
from quantized_net.packed.kernels import llvm_ir, pixel_lanes, tiles

#: Positions a vector: its byte lanes.
LANES = 32
#: Vectors of positions a tile: each table looked up serves them all.
VECTORS = 2
#: Positions a tile.
POSITIONS = LANES * VECTORS
#: The fewest flattened positions of a batch for a convolution on bits to
#: run across the positions' lanes. Each tile reads its group's tables,
#: 32 bytes for each byte of each filter's taps, where the filters' lanes
#: read that byte: an image of the CIFAR-10 ConvNet's 8 x 8 layers alone
#: runs faster across the filters, a batch of 100 across the positions
#: (docs/packed.md).
MIN_POSITIONS = 2 * POSITIONS
#: Filters a tile: the bits of a position's uint32 (an output word's half).
TILE_FILTERS = 32
#: Vectors a tile counts in as it steps (bytes of counts of bits, int16
#: sums of pixels): with the positions' vectors and a table, AVX2's 16
#: vector registers. The int16 totals of bits, added to once every 31
#: steps, stay in memory.
_COUNTERS = 8
#: Taps' bytes counted in bytes before they are widened: 31 x 8 < 256.
_BYTES_PER_WIDENING = 31
#: A table: one byte an entry.
TABLE_BYTES = 16
#: The kinds of tile: on bits (:func:`filter_tables`), on pixels
#: (:func:`pixel_signs`).
BITS, PIXELS = 0, 1

_BYTES = ir.VectorType(llvm_ir.I8, LANES)
_HALF = ir.VectorType(llvm_ir.I8, TABLE_BYTES)
_COUNTS = ir.VectorType(llvm_ir.I16, LANES)
_SUMS = ir.VectorType(llvm_ir.I16, LANES // 2)


def runs(conv, form, images=None):
    """Whether convolution ``conv`` on bits runs across the positions'
    lanes in ``form``: the avx2 form's, stride 1, its counts within
    int16; for a batch of ``images`` (where given), at least
    :data:`MIN_POSITIONS` positions in all."""
    channels = conv.in_shape[0]
    return (form == 'avx2' and conv.stride == 1 and
            conv.ksize ** 2 * plane_count(channels) * 8 < 2 ** 15 and
            (images is None or
             images * flat_positions(conv) >= MIN_POSITIONS))


def plane_count(channels):
    """The byte planes of ``channels`` channels: a byte of 8 each."""
    return -(-channels // 8)


def padded_width(conv):
    """A row of a plane: the input's width with its padding."""
    return conv.in_shape[2] + 2 * conv.pad


def flat_positions(conv):
    """The flattened output positions a convolution counts, whole vectors:
    every padded row's, up to the last output row's end."""
    _, conv_height, _ = conv.conv_shape()
    return -(-conv_height * padded_width(conv) // LANES) * LANES


def plane_length(conv):
    """The positions of a plane (a byte each of bits, a pair of pixels
    each of pixels): the padded rows, then blank ones that the last tile's
    taps read past them, whole vectors."""
    k, width = conv.ksize, padded_width(conv)
    rows = conv.in_shape[1] + 2 * conv.pad
    length = max(rows * width, flat_positions(conv) + (k - 1) * (width + 1))
    return -(-length // LANES) * LANES


def image_bytes(conv, kind):
    """The bytes a convolution of ``kind`` lays out for one image: its
    input's planes and its unpooled bits."""
    channels = conv.in_shape[0]
    planes = (2 * channels if kind == PIXELS else plane_count(channels))
    groups = -(-conv.filters // TILE_FILTERS)
    return (planes * plane_length(conv) +
            4 * groups * flat_positions(conv))


@kernel_cache.njit(parallel=True)
def byte_planes_kernel(h, pad, out):
    """:func:`byte_planes` into ``out`` (zeroed here), both C-contiguous."""
    images, height, width, n_words = h.shape
    _, n_planes, length = out.shape
    row = width + 2 * pad
    flat_h, flat_out = h.reshape(-1), out.reshape(-1)
    step = numpy.uint64(n_words)
    for task in numba.prange(images * n_planes):
        i = task // n_planes
        p = task % n_planes
        plane = (i * n_planes + p) * length
        flat_out[plane:plane + length] = 0
        shift = numpy.uint64(8 * (p % 8))
        for y in range(height):
            # Unsigned indexes, as tap_planes.planes_kernel's: the loop
            # vectorizes (3.4x at batch 100 of 28 x 28 x 32).
            at = numpy.uint64(plane + (y + pad) * row + pad)
            source = numpy.uint64((i * height + y) * width * n_words +
                                  p // 8)
            for x in range(width):
                ux = numpy.uint64(x)
                flat_out[at + ux] = numpy.uint8(
                    (flat_h[source + ux * step] >> shift) &
                    numpy.uint64(255))


def byte_planes(h, conv):
    """The packed activations ``h`` ``(images, height, width,
    words(channels))`` as convolution ``conv``'s byte planes: ``uint8``
    ``(images, planes, plane_length)``, plane ``p`` the bits ``8p`` to
    ``8p + 7`` of every padded position, row after row."""
    out = numpy.empty((len(h), plane_count(conv.in_shape[0]),
                       plane_length(conv)), numpy.uint8)
    if out.size:
        kernel_cache.threads()  # byte_planes_kernel is parallel
        byte_planes_kernel(numpy.ascontiguousarray(h), conv.pad, out)
    return out


def tap_offsets(conv):
    """The byte offset of each tap's byte of each plane from an output
    position's own in its image's planes, taps row by row, then planes:
    int64 ``(ksize * ksize * planes,)``."""
    k, width = conv.ksize, padded_width(conv)
    planes = plane_count(conv.in_shape[0])
    return numpy.array([p * plane_length(conv) + ky * width + kx
                        for ky in range(k) for kx in range(k)
                        for p in range(planes)], numpy.int64)


def filter_tables(weights, conv):
    """The lookup tables of the packed filters (the file's rows):
    ``uint8`` ``(groups, bytes, 2, TILE_FILTERS, 16)``, for each group of
    :data:`TILE_FILTERS` filters and each byte of :func:`tap_offsets`,
    its low nibble's then its high nibble's tables, ``T[i] = popcount(i
    XOR w)`` of each filter's nibble ``w``; 0 bits past the last channel
    and past the last filter."""
    channels, k = conv.in_shape[0], conv.ksize
    n = len(weights)
    planes = plane_count(channels)
    bits = unpack_bits(weights, conv.taps()).reshape(n, channels, k * k)
    laid = numpy.zeros((n, k * k, planes * 8), numpy.uint8)
    laid[:, :, :channels] = bits.transpose(0, 2, 1)
    nibbles = (laid.reshape(n, k * k * planes * 2, 4) <<
               numpy.arange(4, dtype=numpy.uint8)).sum(axis=2,
                                                       dtype=numpy.uint8)
    counts = numpy.array(tiles.NIBBLE_COUNTS, numpy.uint8)
    groups = -(-n // TILE_FILTERS)
    padded = numpy.zeros((groups * TILE_FILTERS, nibbles.shape[1]),
                         numpy.uint8)
    padded[:n] = nibbles
    tables = counts[padded[:, :, None] ^ numpy.arange(16, dtype=numpy.uint8)]
    return numpy.ascontiguousarray(tables.reshape(
        groups, TILE_FILTERS, k * k * planes, 2, TABLE_BYTES).transpose(
            0, 2, 3, 1, 4))


def runs_pixels(conv, form):
    """Whether first convolution ``conv``, on pixels, runs across the
    positions' lanes in ``form``: the avx2 form's, stride 1, its sums
    within int16 (:data:`pixel_lanes.MAX_TAPS`)."""
    return (form == 'avx2' and conv.stride == 1 and
            conv.taps() <= pixel_lanes.MAX_TAPS)


def pair_offsets(conv):
    """The byte offset of each pair of taps
    (:func:`pixel_lanes.tap_runs`) from an output position's own in its
    image's pixel planes: int64 ``(pairs,)``."""
    width = padded_width(conv)
    return 2 * numpy.array([c * plane_length(conv) + ky * width + kx
                            for c, ky, kx in pixel_lanes.tap_runs(conv, 2)],
                           numpy.int64)


def pixel_signs(weights, conv):
    """The packed filters (the file's rows) as pairs of int8 +-1 signs
    (:func:`pixel_lanes.run_signs`), a group of :data:`TILE_FILTERS`
    filters at a time: ``(groups, pairs, TILE_FILTERS, 2)``."""
    signs = pixel_lanes.run_signs(weights, conv, 2)
    return numpy.ascontiguousarray(signs.reshape(
        len(signs), -1, TILE_FILTERS, 2).transpose(1, 0, 2, 3))


@kernel_cache.njit(parallel=True)
def pixel_planes_kernel(pixels, channels, height, width, pad, out):
    """:func:`pixel_planes` into ``out`` (zeroed here), ``pixels``
    C-contiguous, ``channels * height * width`` a row."""
    row = width + 2 * pad
    flat = pixels.reshape(-1)
    one = numpy.uint64(1)
    for task in numba.prange(pixels.shape[0] * channels):
        i = task // channels
        c = task % channels
        # Position j's pair, its pixel and its right neighbour's, as one
        # little-endian uint16: a loop the compiler vectorizes, its
        # indexes unsigned (as byte_planes_kernel's: 3x at batch 100).
        plane = out[i, c].reshape(-1).view(numpy.uint16)
        plane[:] = 0
        for y in range(height):
            line = numpy.uint64(((i * channels + c) * height + y) * width)
            start = (y + pad) * row + pad
            # The position before the row's first: the padding's, or
            # unpadded the last of the row above, whose pixel it keeps.
            if start:
                plane[start - 1] |= numpy.uint16(flat[line]) << 8
            at = numpy.uint64(start)
            for x in range(width - 1):
                ux = numpy.uint64(x)
                plane[at + ux] = (numpy.uint16(flat[line + ux]) |
                                  numpy.uint16(flat[line + ux + one]) << 8)
            plane[start + width - 1] = flat[line + numpy.uint64(width - 1)]


def pixel_planes(pixels, conv):
    """The ``uint8`` pixels ``(images, channels * height * width)`` as
    first convolution ``conv``'s planes: ``(images, channels,
    plane_length, 2)``, each channel's padded rows, blank (0) borders, each
    position's pixel beside its right neighbour's, so that one load reads
    16 positions' pairs of taps."""
    channels, height, width = conv.in_shape
    out = numpy.empty((len(pixels), channels, plane_length(conv), 2),
                      numpy.uint8)
    if out.size:
        kernel_cache.threads()  # pixel_planes_kernel is parallel
        pixel_planes_kernel(numpy.ascontiguousarray(pixels), channels,
                            height, width, conv.pad, out)
    return out


def position_limits(limits, classes, conv, never=-1):
    """Each flattened position's bound by filter: int16 ``(groups,
    TILE_FILTERS, flat_positions(conv))`` from ``limits`` ``(n_classes,
    filters)`` and the class of each output position ``classes``
    (:func:`borders.tap_classes`); ``never`` past the last filter and at
    the positions past a row's end: -1 for counts of bits, which never
    pass it, or int16's largest for :func:`pixel_lanes.bounds`."""
    limits = numpy.atleast_2d(limits)
    filters = limits.shape[1]
    groups = -(-filters // TILE_FILTERS)
    _, conv_height, conv_width = conv.conv_shape()
    out = numpy.full((groups * TILE_FILTERS, flat_positions(conv)), never,
                     numpy.int16)
    flat = (numpy.arange(conv_height)[:, None] * padded_width(conv) +
            numpy.arange(conv_width)).reshape(-1)
    # Counts and sums lie within int16, so a limit past it passes them
    # all, or none, as int16's extreme does.
    info = numpy.iinfo(numpy.int16)
    out[:filters, flat] = numpy.clip(limits[classes].T, info.min, info.max)
    return out.reshape(groups, TILE_FILTERS, -1)


def pixel_limits(limits, classes, conv):
    """:func:`position_limits` of first convolution ``conv``'s bounds on
    its sums (:func:`pixel_lanes.bounds` of :func:`convolutions.
    first_limits`' ``limits``)."""
    return position_limits(
        pixel_lanes.bounds(limits, conv.filters)[:, :conv.filters], classes,
        conv, never=numpy.iinfo(numpy.int16).max)


def _tile_codegen(context, builder, vectors, args):
    x, offsets, n_bytes, tables, limits, limits_stride, out = args
    part_filters = _COUNTERS // vectors
    i64 = llvm_ir.I64
    low = ir.Constant(_BYTES, [15] * LANES)
    four = ir.Constant(_BYTES, [4] * LANES)
    twice = ir.Constant(ir.VectorType(llvm_ir.I32, LANES),
                        list(range(TABLE_BYTES)) * 2)
    step = 2 * TILE_FILTERS * TABLE_BYTES  # a byte's tables
    runs_of = builder.udiv(
        builder.add(n_bytes, ir.Constant(i64, _BYTES_PER_WIDENING - 1)),
        ir.Constant(i64, _BYTES_PER_WIDENING))
    fired = _no_bits(vectors)
    for part in range(TILE_FILTERS // part_filters):
        totals = [[cgutils.alloca_once_value(builder,
                                             ir.Constant(_COUNTS, None))
                   for _ in range(vectors)] for _ in range(part_filters)]
        with cgutils.for_range(builder, runs_of) as run:
            first = builder.mul(run.index,
                                ir.Constant(i64, _BYTES_PER_WIDENING))
            last = builder.add(first, ir.Constant(i64, _BYTES_PER_WIDENING))
            last = builder.select(builder.icmp_signed('<', last, n_bytes),
                                  last, n_bytes)
            counts = [[cgutils.alloca_once_value(builder,
                                                 ir.Constant(_BYTES, None))
                       for _ in range(vectors)] for _ in range(part_filters)]
            with cgutils.for_range(builder, last, start=first) as loop:
                q = loop.index
                at = builder.add(x, llvm_ir.int64_at(builder, offsets, q))
                data = [llvm_ir.load(builder, llvm_ir.offset(
                    builder, at, LANES * v), _BYTES, 1)
                    for v in range(vectors)]
                nibbles = ([builder.and_(d, low) for d in data],
                           [builder.and_(builder.lshr(d, four), low)
                            for d in data])
                table_at = llvm_ir.offset(
                    builder, tables, builder.mul(q, ir.Constant(i64, step)),
                    part * part_filters * TABLE_BYTES)
                for half, nibble in enumerate(nibbles):
                    for f in range(part_filters):
                        table = llvm_ir.load(builder, llvm_ir.offset(
                            builder, table_at,
                            (half * TILE_FILTERS + f) * TABLE_BYTES),
                            _HALF, 1)
                        table = builder.shuffle_vector(table, table, twice)
                        for v in range(vectors):
                            looked = llvm_ir.call(
                                builder, 'llvm.x86.avx2.pshuf.b', _BYTES,
                                table, nibble[v])
                            builder.store(builder.add(
                                builder.load(counts[f][v]), looked),
                                counts[f][v])
            for f in range(part_filters):
                for v in range(vectors):
                    builder.store(builder.add(
                        builder.load(totals[f][v]),
                        builder.zext(builder.load(counts[f][v]), _COUNTS)),
                        totals[f][v])
        fired = _fired(builder, fired, [[builder.load(t) for t in row]
                                        for row in totals],
                       part * part_filters, limits, limits_stride, '<=')
    _store(builder, fired, out)
    return context.get_dummy_value()


def _fired(builder, fired, totals, first, limits, limits_stride, test):
    """``fired`` (for each vector of positions, the 4 bytes of their
    uint32s, a byte a lane) with bit ``first + f`` set where
    ``totals[f][v] test limit`` (int16 lanes, ``test`` an icmp: '<=',
    '>='). Kept in bytes, each filter's bit is one select and one OR of a
    vector, where in uint32 lanes it is four of each."""
    fired = [list(words) for words in fired]
    for f, vectors in enumerate(totals):
        unit = first + f
        bounds_at = llvm_ir.offset(builder, limits, builder.mul(
            limits_stride, ir.Constant(llvm_ir.I64, unit)))
        bit = ir.Constant(_BYTES, [1 << unit % 8] * LANES)
        for v, total in enumerate(vectors):
            bound = llvm_ir.load(builder, llvm_ir.offset(
                builder, bounds_at, 2 * LANES * v), _COUNTS, 2)
            passed = builder.icmp_signed(test, total, bound)
            fired[v][unit // 8] = builder.or_(
                fired[v][unit // 8],
                builder.select(passed, bit, ir.Constant(_BYTES, None)))
    return fired


def _no_bits(vectors):
    return [[ir.Constant(_BYTES, None)] * 4 for _ in range(vectors)]


def _store(builder, fired, out):
    """Stores each position's 4 bytes of ``fired`` as its uint32."""
    def concat(a, b):
        return builder.shuffle_vector(a, b, ir.Constant(
            ir.VectorType(llvm_ir.I32, 2 * LANES), list(range(2 * LANES))))
    interleave = ir.Constant(ir.VectorType(llvm_ir.I32, 4 * LANES), [
        (j // 2) * 2 * LANES + (j % 2) * LANES + p
        for p in range(LANES) for j in range(4)])
    for v, (b0, b1, b2, b3) in enumerate(fired):
        words = builder.shuffle_vector(concat(b0, b1), concat(b2, b3),
                                       interleave)
        llvm_ir.store(builder, words, llvm_ir.offset(
            builder, out, 4 * LANES * v), 4)


def _pixel_codegen(context, builder, vectors, args):
    x, offsets, n_pairs, signs, limits, limits_stride, out = args
    part_filters = _COUNTERS // (2 * vectors)
    i64 = llvm_ir.I64
    whole = ir.Constant(ir.VectorType(llvm_ir.I32, LANES), list(range(LANES)))
    fired = _no_bits(vectors)
    for part in range(TILE_FILTERS // part_filters):
        sums = [[[cgutils.alloca_once_value(builder, ir.Constant(_SUMS, None))
                  for _ in range(2)] for _ in range(vectors)]
                for _ in range(part_filters)]
        with cgutils.for_range(builder, n_pairs) as loop:
            q = loop.index
            at = builder.add(x, llvm_ir.int64_at(builder, offsets, q))
            # 16 positions' pairs of pixels a load (pixel_planes).
            pairs = [[llvm_ir.load(builder, llvm_ir.offset(
                builder, at, 2 * LANES * v + LANES * h), _BYTES, 1)
                for h in range(2)] for v in range(vectors)]
            signs_at = llvm_ir.offset(
                builder, signs, builder.mul(q, ir.Constant(
                    i64, 2 * TILE_FILTERS)), 2 * part * part_filters)
            for f in range(part_filters):
                pair = builder.bitcast(llvm_ir.splat(builder, llvm_ir.load(
                    builder, llvm_ir.offset(builder, signs_at, 2 * f),
                    llvm_ir.I16, 1), _SUMS), _BYTES)
                for v in range(vectors):
                    for h in range(2):
                        builder.store(builder.add(
                            builder.load(sums[f][v][h]), llvm_ir.call(
                                builder, 'llvm.x86.avx2.pmadd.ub.sw', _SUMS,
                                pairs[v][h], pair)), sums[f][v][h])
        totals = [[builder.shuffle_vector(builder.load(low),
                                          builder.load(high), whole)
                   for low, high in row] for row in sums]
        fired = _fired(builder, fired, totals, part * part_filters, limits,
                       limits_stride, '>=')
    _store(builder, fired, out)
    return context.get_dummy_value()


_CODEGENS = {BITS: _tile_codegen, PIXELS: _pixel_codegen}


@intrinsic
def tile(typingctx, kind, vectors, x, offsets, steps, tables, limits,
         limits_stride, out):
    """``tile(kind, vectors, x, offsets, steps, tables, limits,
    limits_stride, out)``: for the ``vectors * LANES`` flattened positions
    from the one at ``x`` and :data:`TILE_FILTERS` filters, stores the
    uint32 of each position at ``out + 4 p``, bit ``f`` set where its
    test passes against the int16 ``limit_pf`` at ``limits + f *
    limits_stride + 2 p``; ``kind`` and ``vectors`` literals (1 or
    :data:`VECTORS`). The :data:`BITS` tile tests ``count_pf <=
    limit_pf``, the count over the ``steps`` bytes at ``x + offsets[q]``
    (the int64s at the address ``offsets``) of each lane against the
    tables from ``tables`` (a group's :func:`filter_tables`); the
    :data:`PIXELS` tile ``S_pf >= limit_pf``, ``S`` the sum over the
    ``steps`` pairs of pixels at ``x + offsets[q]`` of each lane times
    their signs from ``tables`` (a group's :func:`pixel_signs`)."""
    for literal, values in ((kind, _CODEGENS), (vectors, (1, VECTORS))):
        if not (isinstance(literal, types.IntegerLiteral)
                and literal.literal_value in values):
            raise numba.core.errors.TypingError(
                'kind and vectors must be literals of {} and {}'.format(
                    tuple(_CODEGENS), (1, VECTORS)))
    codegen = _CODEGENS[kind.literal_value]
    count = vectors.literal_value

    def generate(context, builder, signature, args):
        return codegen(context, builder, count, args[2:])
    return types.void(kind, vectors, *[types.int64] * 7), generate


@kernel_cache.njit(parallel=True)
def convolution_kernel(x, offsets, tables, limits, flips, row_width, pool,
                       kind, scratch, out):
    """A convolution across the positions' lanes into ``out``'s ``uint32``
    halves of words ``(images, out_h, out_w, 2 words)``, ``flips`` the
    flip words' halves, ``scratch`` uint32 ``(images, groups,
    flat_positions)`` for the unpooled bits: the tiles of ``kind`` (a
    literal) on the planes ``x``, then each position's bits (each 2 x 2
    window's OR where ``pool`` is 2) XOR its flips."""
    images = x.shape[0]
    groups, steps = tables.shape[0], tables.shape[1]
    flat = scratch.shape[2]
    tiles = -(-flat // POSITIONS)
    # A group's tables (1 KB a byte of a position's taps: 576 KB for 3 x 3
    # taps of 512 channels) stay in the caches over its tiles in every
    # image.
    for task in numba.prange(groups * images * tiles):
        g = task // (images * tiles)
        i = task // tiles % images
        at = task % tiles * POSITIONS
        x_at = x.ctypes.data + i * x.strides[0] + at * x.strides[2]
        tables_at = tables.ctypes.data + g * tables.strides[0]
        limits_at = (limits.ctypes.data + g * limits.strides[0] +
                     at * limits.strides[2])
        out_at = (scratch.ctypes.data + i * scratch.strides[0] +
                  g * scratch.strides[1] + at * scratch.strides[2])
        # The last tile of a row of whole vectors may be one vector.
        if at + POSITIONS <= flat:
            tile(kind, VECTORS, x_at, offsets.ctypes.data, steps, tables_at,
                 limits_at, limits.strides[1], out_at)
        else:
            tile(kind, 1, x_at, offsets.ctypes.data, steps, tables_at,
                 limits_at, limits.strides[1], out_at)
    _, out_h, out_w, halves = out.shape
    # A row of outputs a group at a time, with no branch inside: a loop
    # over positions that tests the pooling costs 9 times as much.
    for task in numba.prange(images * out_h):
        i = task // out_h
        y = task % out_h
        for g in range(groups):
            flip = flips[g]
            if pool:
                top = scratch[i, g, 2 * y * row_width:]
                below = top[row_width:]
                for x_at in range(out_w):
                    out[i, y, x_at, g] = (
                        top[2 * x_at] | top[2 * x_at + 1] |
                        below[2 * x_at] | below[2 * x_at + 1]) ^ flip
            else:
                row = scratch[i, g, y * row_width:]
                for x_at in range(out_w):
                    out[i, y, x_at, g] = row[x_at] ^ flip
        # The halves past the last filter: no unit, 0 bits.
        for g in range(groups, halves):
            flip = flips[g]
            for x_at in range(out_w):
                out[i, y, x_at, g] = flip


@kernel_cache.njit
def convolved(x, offsets, tables, limits, flips, row_width, pool, kind, flat,
              out_h, out_w):
    """:func:`convolution_kernel`'s output words ``(images, out_h, out_w,
    words)``, ``flips`` the flip words, ``flat`` the flattened positions
    counted (:func:`flat_positions`), ``kind`` a literal."""
    out = numpy.empty((x.shape[0], out_h, out_w, len(flips)), numpy.uint64)
    convolution_kernel(
        x, offsets, tables, limits, flips.view(numpy.uint32), row_width,
        pool, kind, numpy.empty((x.shape[0], len(tables), flat),
                                numpy.uint32), out.view(numpy.uint32))
    return out


def _convolved_of(kind):
    # With its kind a constant, a literal to tile (numba caches a closure
    # under the values of its cells).
    @kernel_cache.njit
    def kernel(x, offsets, tables, limits, flips, row_width, pool, flat,
               out_h, out_w):
        return convolved(x, offsets, tables, limits, flips, row_width, pool,
                         kind, flat, out_h, out_w)
    return kernel


#: ``CONVOLVED[kind](x, offsets, tables, limits, flips, row_width, pool,
#: flat, out_h, out_w)``: :func:`convolved` of ``kind``.
CONVOLVED = {kind: _convolved_of(kind) for kind in _CODEGENS}


def convolution(x, conv, tables, offsets, limits, flips, pool, kind=BITS):
    """Convolution ``conv`` of stride 1 across the positions' lanes and,
    where it pools 2 x 2, its pooling: ``uint64`` ``(images, out_h, out_w,
    words(filters))``, as :func:`filter_lanes.convolution`.

    Args:
        x: Its input's byte planes (:func:`byte_planes`), or for
            :data:`PIXELS` its pixels' (:func:`pixel_planes`).
        conv: The convolution (:class:`format.Convolution`).
        tables: :func:`filter_tables`, or :func:`pixel_signs`.
        offsets: :func:`tap_offsets`, or :func:`pair_offsets`.
        limits: :func:`position_limits` of the classes' popcount limits,
            or of their bounds on the pixels' sums
            (:func:`pixel_lanes.bounds`).
        flips: ``uint64`` ``(words(filters),)``: the flips as output words.
        pool: 2 to pool 2 x 2 (whole windows), else 0.
        kind: :data:`BITS`, or :data:`PIXELS`.
    """
    _, conv_height, conv_width = conv.conv_shape()
    kernel_cache.threads()  # the kernel is parallel
    return CONVOLVED[kind](x, offsets, tables, limits, flips,
                           padded_width(conv), pool, flat_positions(conv),
                           conv_height // (pool or 1),
                           conv_width // (pool or 1))
