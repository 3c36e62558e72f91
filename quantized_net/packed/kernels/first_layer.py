"""The first layer on the CPU: 8-bit pixels against binary weights, to
packed outputs in each form's layout.

Unit ``j`` of image ``i`` computes the integer ``d_ij = sum_k s_jk p_ik``
of its weight signs ``s`` and the pixels ``p``, as ``2 S - t``: ``S`` the
sum of the pixels where its weight is +1, ``t`` of all of them
(:func:`thresholds.pixel_limits`). The pixels are taken two at a time
(:func:`layouts.pixel_pairs`), and only the pairs that are not both zero
are visited: 22% of MNIST's (88 of 392 on average), which hold its 19%
nonzero pixels. :func:`pair_sums` multiplies a pair by the 0/1 masks of
weight +1 of :data:`blocking.MASK_UNITS` units (:func:`layouts.pixel_masks`)
and adds both products, into 16-bit counters held in registers:
``vpmaddubsw`` (AVX2) in the vector forms, LLVM's generic vector
arithmetic in the scalar one.
"""
import numpy
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS
from quantized_net.packed.kernels import cpu_features
from quantized_net.packed.kernels import llvm_ir
from quantized_net.packed.kernels.blocking import (
    MASK_UNITS, PAIR_CHUNK, PAIR_LIST_IMAGES, PIXEL_IMAGES)
from quantized_net.packed.kernels.layouts import layout_words, pixel_pairs
from quantized_net.packed.kernels.llvm_ir import I8, I16, I32, I64
from quantized_net.packed.kernels.thresholds import (
    flip_bits, store_word, word_limits)

_I16X16 = ir.VectorType(I16, 16)
_I8X32 = ir.VectorType(I8, 32)


def _multiply_add(builder, form, value, mask):
    """``lo m[2 u] + hi m[2 u + 1]`` for the 16 units ``u`` of the 32 byte
    masks ``m``, the pair's pixels ``lo | hi << 8`` (an i16)."""
    if form != 'scalar':
        pairs = builder.bitcast(llvm_ir.splat(builder, value, _I16X16),
                                _I8X32)
        return llvm_ir.call(builder, 'llvm.x86.avx2.pmadd.ub.sw', _I16X16,
                            pairs, mask)
    # A unit's two masks as one 16-bit lane, m[2 u] its low byte (as the
    # pairs hold their pixels): two multiplications of lanes, no shuffle.
    masks = builder.bitcast(mask, _I16X16)
    low = builder.and_(masks, ir.Constant(_I16X16, [0xFF] * 16))
    high = builder.lshr(masks, ir.Constant(_I16X16, [8] * 16))
    return builder.add(
        builder.mul(low, llvm_ir.splat(builder, builder.and_(
            value, ir.Constant(I16, 0xFF)), _I16X16)),
        builder.mul(high, llvm_ir.splat(builder, builder.lshr(
            value, ir.Constant(I16, 8)), _I16X16)))


def _pair_sums_codegen(form):
    def codegen(context, builder, signature, args):
        _, masks, index, values, count, counters = args
        slots = [builder.inttoptr(llvm_ir.offset(builder, counters, 32 * q),
                                  _I16X16.as_pointer())
                 for q in range(MASK_UNITS // 16)]
        sums = [cgutils.alloca_once_value(builder, builder.load(
            slot, align=2)) for slot in slots]
        index = builder.inttoptr(index, I32.as_pointer())
        values = builder.inttoptr(values, I16.as_pointer())
        with cgutils.for_range(builder, count) as loop:
            pair = builder.zext(builder.load(builder.gep(
                index, [loop.index])), I64)
            value = builder.load(builder.gep(values, [loop.index]))
            row = llvm_ir.offset(builder, masks, builder.mul(
                pair, ir.Constant(I64, 2 * MASK_UNITS)))
            for q, total in enumerate(sums):
                mask = llvm_ir.load(builder, llvm_ir.offset(
                    builder, row, 32 * q), _I8X32, 1)
                builder.store(builder.add(builder.load(total), _multiply_add(
                    builder, form, value, mask)), total)
        for slot, total in zip(slots, sums):
            builder.store(builder.load(total), slot, align=2)
        return context.get_dummy_value()
    return codegen


@intrinsic
def pair_sums(typingctx, form, masks, index, values, count, counters):
    """``pair_sums(form, masks, index, values, count, counters)``: adds
    ``sum_t lo_t m[index_t][2 u] + hi_t m[index_t][2 u + 1]`` to the
    :data:`MASK_UNITS` uint16 ``counters[u]``, over ``count`` uint16 pair
    values ``lo_t | hi_t << 8`` and int32 pair indices, for the mask rows
    ``m[p] = masks + p * 2 * MASK_UNITS`` (addresses). The caller keeps
    each sum below 2**16."""
    if not isinstance(form, types.StringLiteral):
        raise numba.core.errors.TypingError('form must be a literal')
    return (types.void(form, *[types.int64] * 5),
            _pair_sums_codegen(form.literal_value))


@intrinsic
def _pixel_at_most(typingctx, total, sums, counters, limits):
    """``_pixel_at_most(total, sums, counters, limits)``: as
    :func:`thresholds.at_most` of ``total - 2 (sums[b] + counters[b])``,
    int32 ``sums`` and uint16 ``counters``, computed in vector lanes."""
    def codegen(context, builder, signature, args):
        total, sums, counters, limits = args
        lanes = ir.VectorType(I32, WORD_BITS)
        held = builder.add(llvm_ir.word_lanes(builder, sums, 32),
                           builder.zext(llvm_ir.word_lanes(
                               builder, counters, 16), lanes))
        twice = builder.shl(held, ir.Constant(lanes, [1] * WORD_BITS))
        spread = llvm_ir.splat(builder, builder.trunc(total, I32), lanes)
        return llvm_ir.at_most(builder, builder.sub(spread, twice), limits)
    return types.uint64(*[types.int64] * 4), codegen


@intrinsic
def _nonzero_pairs(typingctx, address):
    """``_nonzero_pairs(address)``: the word whose bit ``t`` is set where
    the uint16 at ``address + 2 t`` is not 0, ``t < 64``."""
    def codegen(context, builder, signature, args):
        return llvm_ir.nonzero(builder, llvm_ir.word_lanes(
            builder, args[0], 16))
    return types.uint64(types.int64), codegen


@intrinsic
def _lowest_bit(typingctx, word):
    """``_lowest_bit(word)``: the index of the lowest set bit of a nonzero
    ``uint64`` (``tzcnt``)."""
    def codegen(context, builder, signature, args):
        return llvm_ir.call(builder, 'llvm.cttz.i64', I64, args[0],
                            ir.Constant(llvm_ir.I1, 1))
    return types.int64(types.uint64), codegen


@numba.njit(inline='always')
def _list_pairs(row, i, index, values, starts, chunk_sums, totals):
    """Row ``i`` of the lists the layer works from: the sums of the pixel
    pairs ``row`` by chunk, their total, the nonzero pairs in order, and
    where each chunk's pairs start."""
    n_pairs = row.shape[0]
    chunks = chunk_sums.shape[1]
    for c in range(chunks):
        chunk_sum = 0
        for p in range(c * PAIR_CHUNK, min(n_pairs, (c + 1) * PAIR_CHUNK)):
            chunk_sum += (row[p] & 255) + (row[p] >> 8)
        chunk_sums[i, c] = chunk_sum
    totals[i] = chunk_sums[i].sum()
    # The nonzero pairs in order, 64 found by one compare and then visited
    # bit by bit, not a loop that appends every pair, a dependent store
    # each; the sums above vectorize.
    count = 0
    chunk = 0
    for w0 in range(0, n_pairs, WORD_BITS):
        if w0 + WORD_BITS <= n_pairs:
            bits = _nonzero_pairs(row.ctypes.data + 2 * w0)
        else:
            bits = numpy.uint64(0)
            for t in range(n_pairs - w0):
                if row[w0 + t]:
                    bits |= numpy.uint64(1) << numpy.uint64(t)
        while bits:
            p = w0 + _lowest_bit(bits)
            bits &= bits - numpy.uint64(1)
            # Up to p's chunk, not ``while chunk * PAIR_CHUNK <= p``: LLVM
            # vectorizes that loop with an i128 division for its trip count
            # on AVX-512 hosts, a call (__udivti3) numba's JIT cannot link.
            last_chunk = p // PAIR_CHUNK
            while chunk <= last_chunk:
                starts[i, chunk] = count
                chunk += 1
            index[i, count] = p
            values[i, count] = row[p]
            count += 1
    for c in range(chunk, chunks + 1):
        starts[i, c] = count


@numba.njit(inline='always')
def _group_task(masks, index, values, starts, chunk_sums, totals, limits,
                flip, out, form, b0, g, i0, rows, counters, sums,
                since_flush, lim, flp):
    """Group ``g`` of the layer's units for images ``b0 + i0`` to ``b0 +
    i0 + rows - 1``, from their lists of nonzero pairs."""
    n = limits.shape[0]
    chunks = chunk_sums.shape[1]
    counters[:rows] = 0
    sums[:rows] = 0
    since_flush[:rows] = 0
    for c in range(chunks):
        for r in range(rows):
            i = i0 + r
            # Bright images: move the counters to the sums before a chunk
            # could overflow them.
            if since_flush[r] + chunk_sums[i, c] > 65535:
                sums[r] += counters[r]
                counters[r] = 0
                since_flush[r] = 0
            since_flush[r] += chunk_sums[i, c]
            t0 = starts[i, c]
            pair_sums(form, masks[g].ctypes.data,
                      index[i].ctypes.data + 4 * t0,
                      values[i].ctypes.data + 2 * t0,
                      starts[i, c + 1] - t0, counters[r].ctypes.data)
    split = form == 'avx2'
    for u0 in range(0, min(MASK_UNITS, n - g * MASK_UNITS), WORD_BITS):
        j0 = g * MASK_UNITS + u0
        word_limits(limits, flip, j0, n, lim, flp)
        flips = flip_bits(flp)
        for r in range(rows):
            store_word(out, b0 + i0 + r, j0 // WORD_BITS, _pixel_at_most(
                totals[i0 + r], sums[r].ctypes.data + 4 * u0,
                counters[r].ctypes.data + 2 * u0, lim.ctypes.data) ^ flips,
                split)


@kernel_cache.njit(parallel=True)
def first_layer_kernel(pairs, masks, limits, flip, out, threads, form):
    """Unit ``j`` of image ``i`` of ``out`` fires where ``(sum_k p_ik - 2
    S_ij <= limits_j) != flip_j``, written in ``form``'s layout, by
    :func:`pair_sums` of the pixel pairs (uint16 ``pairs``) that are not
    both zero, on ``threads`` threads. ``form`` is a literal."""
    m, n_pairs = pairs.shape
    groups = masks.shape[0]
    chunks = (n_pairs + PAIR_CHUNK - 1) // PAIR_CHUNK
    batch = max(1, min(m, PAIR_LIST_IMAGES))
    index = numpy.empty((batch, n_pairs), numpy.int32)
    values = numpy.empty((batch, n_pairs), numpy.uint16)
    starts = numpy.empty((batch, chunks + 1), numpy.int64)
    chunk_sums = numpy.empty((batch, chunks), numpy.int64)
    totals = numpy.empty(batch, numpy.int32)
    for b0 in range(0, m, batch):
        size = min(batch, m - b0)
        # A parallel region costs some microseconds: not for one image.
        if size == 1:
            _list_pairs(pairs[b0], 0, index, values, starts, chunk_sums,
                        totals)
        else:
            for i in numba.prange(size):
                _list_pairs(pairs[b0 + i], i, index, values, starts,
                            chunk_sums, totals)
        blocks = (size + PIXEL_IMAGES - 1) // PIXEL_IMAGES
        # One task per (group of units, block of images): a batch of one
        # image still spreads over the cores, and the images of a block
        # share each chunk's masks in L1. Each thread takes a run of tasks
        # (the same group's masks) with its own scratch: an allocation a
        # task would cost as much as a chunk's sums.
        tasks = groups * blocks
        for thread in numba.prange(threads):
            counters = numpy.empty((PIXEL_IMAGES, MASK_UNITS), numpy.uint16)
            sums = numpy.empty((PIXEL_IMAGES, MASK_UNITS), numpy.int32)
            since_flush = numpy.empty(PIXEL_IMAGES, numpy.int64)
            lim = numpy.empty(WORD_BITS, numpy.int32)
            flp = numpy.empty(WORD_BITS, numpy.bool_)
            for task in range(tasks * thread // threads,
                              tasks * (thread + 1) // threads):
                i0 = task % blocks * PIXEL_IMAGES
                _group_task(masks, index, values, starts, chunk_sums,
                            totals, limits, flip, out, form, b0,
                            task // blocks, i0,
                            min(PIXEL_IMAGES, size - i0), counters, sums,
                            since_flush, lim, flp)


def _first_layer_of(form):
    # The kernel with the form a constant, as hidden_layers binds its own.
    @kernel_cache.njit
    def first_layer(pairs, masks, limits, flip, out, threads):
        first_layer_kernel(pairs, masks, limits, flip, out, threads, form)
    return first_layer


#: ``FIRST_LAYERS[form](pairs, masks, limits, flip, out, threads)``:
#: :func:`first_layer_kernel` of ``form``.
FIRST_LAYERS = {form: _first_layer_of(form) for form in cpu_features.FORMS}


def checked_pairs(pixels, masks):
    """:func:`layouts.pixel_pairs` of ``pixels``, checked against the
    ``masks`` of :func:`layouts.pixel_masks`.

    Raises:
        TypeError: The pixels are not ``uint8``.
        ValueError: The masks are of another number of pixel pairs.
    """
    pairs = pixel_pairs(pixels)
    if masks.shape[1] != pairs.shape[1]:
        raise ValueError('masks of {} pixel pairs for {} pixels'.format(
            masks.shape[1], pixels.shape[1]))
    return pairs


def first_layer(pixels, masks, limits, flip, form):
    """The first layer with ``form``'s kernels: unit ``j`` of image ``i``
    is +1 where ``unit_fires(d_ij, T_j, flip_j)``.

    Args:
        pixels: ``uint8`` ``(m, n_in)``.
        masks: :func:`layouts.pixel_masks` of the packed weight signs.
        limits: :func:`thresholds.pixel_limits` of the int32 thresholds
            ``T``.
        flip: bool ``(n,)``.
        form (str): One of :data:`cpu_features.FORMS` this CPU runs.

    Returns:
        ``uint64`` ``(m, layout_words(n, form))``: the packed outputs in
        ``form``'s layout, the next layer's input.
    """
    pairs = checked_pairs(pixels, masks)
    n = limits.shape[0]
    out = numpy.zeros((len(pixels), layout_words(n, form)), numpy.uint64)
    if out.size:
        FIRST_LAYERS[form](pairs, masks, limits, flip, out,
                           kernel_cache.threads())
    return out
