"""The first layer of packed inference on the CPU: 8-bit pixels against
binary weights, with the numba intrinsics of :mod:`simd_kernels` (the
output layout, the vector compare of thresholds) and its own.

The pixels are taken two at a time: ``vpmaddubsw`` multiplies a pair by
16 units' 0/1 masks of weight +1 and adds the two products, into 16-bit
counters of 128 units held in eight AVX2 registers (:data:`MASK_UNITS`).
Only pairs that are not both zero are visited: 22% of MNIST's (88 of 392
on average), which hold its 19% nonzero pixels. Every form's first layer
is this one, and needs AVX2.

numba's cache notices a change of a function's own file only: after a
change to :mod:`simd_kernels`, delete this module's ``__pycache__``
entries (``__pycache__/simd_pixels*``) too.
"""
import numpy

try:
    from llvmlite import ir
    import numba
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # xnor_popcount says so when a CPU kernel is called
    numba = None

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS

#: Images a first-layer task: their counters (16 x 256 bytes) stay in L1
#: beside a chunk's masks (:data:`PAIR_CHUNK`).
PIXEL_BLOCK = 16

#: Units a pair sum keeps in registers: 8 vectors of 16 16-bit counters.
MASK_UNITS = 128
#: Pixel pairs a chunk: its masks (98 x 256 bytes) stay in L1 while a block
#: of images passes, its sums (at most ``98 * 510``) fit the 16-bit
#: counters, and MNIST's 392 pairs are 4 whole chunks.
PAIR_CHUNK = 98


def _pair_sums_codegen(context, builder, signature, args):
    masks, index, values, count, counters = args
    i16x16 = ir.VectorType(ir.IntType(16), 16)
    i8x32 = ir.VectorType(_I8, 32)
    slots = [builder.inttoptr(builder.add(counters, ir.Constant(_I64, 32 * q)),
                              i16x16.as_pointer())
             for q in range(MASK_UNITS // 16)]
    accs = [cgutils.alloca_once_value(builder, builder.load(slot, align=2))
            for slot in slots]
    index = builder.inttoptr(index, _I32.as_pointer())
    values = builder.inttoptr(values, ir.IntType(16).as_pointer())
    with cgutils.for_range(builder, count) as loop:
        pair = builder.zext(builder.load(builder.gep(index, [loop.index])),
                            _I64)
        value = builder.load(builder.gep(values, [loop.index]))
        value = builder.bitcast(builder.shuffle_vector(
            builder.insert_element(ir.Constant(i16x16, None), value,
                                   ir.Constant(_I32, 0)),
            ir.Constant(i16x16, None), ir.Constant(
                ir.VectorType(_I32, 16), [0] * 16)), i8x32)
        row = builder.add(masks, builder.mul(pair, ir.Constant(
            _I64, 2 * MASK_UNITS)))
        for q, acc in enumerate(accs):
            mask = builder.load(builder.inttoptr(
                builder.add(row, ir.Constant(_I64, 32 * q)),
                i8x32.as_pointer()), align=1)
            builder.store(builder.add(builder.load(acc), _call(
                builder, 'llvm.x86.avx2.pmadd.ub.sw', i16x16, value, mask)),
                acc)
    for slot, acc in zip(slots, accs):
        builder.store(builder.load(acc), slot, align=2)
    return context.get_dummy_value()


if numba is not None:
    from quantized_net.packed.kernels.simd_kernels import (_I8, _I32, _I64, _at_most_codegen, _call,
                              _dot, _flips, _lanes, _layer, _store, _word)

    @intrinsic
    def pair_sums(typingctx, masks, index, values, count, counters):
        """``pair_sums(masks, index, values, count, counters)``: adds
        ``sum_t lo_t m[index_t][u][0] + hi_t m[index_t][u][1]`` to the
        :data:`MASK_UNITS` uint16 ``counters[u]``, over ``count`` uint16
        pair values ``lo_t | hi_t << 8`` and int32 pair indices, for the mask
        rows ``m[p] = masks + p * 2 * MASK_UNITS`` (1 where the unit's
        weight on the pair's pixel is +1, else 0): one ``vpmaddubsw``
        multiplies both pixels of a pair by 16 units' masks and adds
        them. The caller keeps each sum below 2**16."""
        return types.void(*[types.int64] * 5), _pair_sums_codegen

    @intrinsic
    def _pixel_at_most(typingctx, total, sums, counters, limits):
        """``_pixel_at_most(total, sums, counters, limits)``: as
        :func:`_at_most` of ``total - 2 (sums[b] + counters[b])``, int32
        ``sums`` and uint16 ``counters``, computed in vector lanes."""
        def codegen(context, builder, signature, args):
            total, sums, counters, limits = args
            lanes = ir.VectorType(_I32, WORD_BITS)
            held = builder.add(_lanes(builder, sums, 32), builder.zext(
                _lanes(builder, counters, 16), lanes))
            spread = builder.shuffle_vector(
                builder.insert_element(ir.Constant(lanes, None),
                                       builder.trunc(total, _I32),
                                       ir.Constant(_I32, 0)),
                ir.Constant(lanes, None),
                ir.Constant(lanes, [0] * WORD_BITS))
            twice = builder.shl(held, ir.Constant(lanes, [1] * WORD_BITS))
            return _at_most_codegen(builder, builder.sub(spread, twice),
                                    limits)
        return types.uint64(*[types.int64] * 4), codegen

    @intrinsic
    def _nonzero_lanes(typingctx, address):
        """``_nonzero_lanes(address)``: the word whose bit ``t`` is set
        where the uint16 at ``address + 2 t`` is not 0, ``t < 64``."""
        def codegen(context, builder, signature, args):
            lanes = _lanes(builder, args[0], 16)
            return builder.bitcast(builder.icmp_unsigned(
                '!=', lanes, ir.Constant(lanes.type, None)), _I64)
        return types.uint64(types.int64), codegen

    @intrinsic
    def _lowest_bit(typingctx, word):
        """``_lowest_bit(word)``: the index of the lowest set bit of a
        nonzero ``uint64`` (``tzcnt``)."""
        def codegen(context, builder, signature, args):
            return builder.zext(_call(builder, 'llvm.cttz.i64', _I64,
                                      args[0], ir.Constant(ir.IntType(1),
                                                           1)), _I64)
        return types.int64(types.uint64), codegen

    @numba.njit(inline='always')
    def _first_task(masks, index, values, starts, chunk_sums, totals,
                    limits, flip, out, split, b0, g, i0, rows, counters,
                    sums, since_flush, lim, flp):
        """Group ``g`` of the first layer's units for images ``b0 + i0``
        to ``b0 + i0 + rows - 1``, from their lists of nonzero pairs."""
        n = limits.shape[0]
        chunks = chunk_sums.shape[1]
        counters[:rows] = 0
        sums[:rows] = 0
        since_flush[:rows] = 0
        for c in range(chunks):
            for r in range(rows):
                i = i0 + r
                # Bright images: move the counters to the sums
                # before a chunk could overflow them.
                if since_flush[r] + chunk_sums[i, c] > 65535:
                    sums[r] += counters[r]
                    counters[r] = 0
                    since_flush[r] = 0
                since_flush[r] += chunk_sums[i, c]
                t0 = starts[i, c]
                pair_sums(masks[g].ctypes.data,
                          index[i].ctypes.data + 4 * t0,
                          values[i].ctypes.data + 2 * t0,
                          starts[i, c + 1] - t0,
                          counters[r].ctypes.data)
        for u0 in range(0, min(MASK_UNITS, n - g * MASK_UNITS),
                        WORD_BITS):
            j0 = g * MASK_UNITS + u0
            _word(limits, flip, j0, n, lim, flp)
            flips = _flips(flp)
            for r in range(rows):
                _store(out, b0 + i0 + r, j0 // WORD_BITS,
                       _pixel_at_most(
                           totals[i0 + r],
                           sums[r].ctypes.data + 4 * u0,
                           counters[r].ctypes.data + 2 * u0,
                           lim.ctypes.data) ^ flips, split)

    @numba.njit(inline='always')
    def _list_pairs(row, i, index, values, starts, chunk_sums, totals):
        """Row ``i`` of the lists :func:`first_layer` works from: the sums
        of the pixel pairs ``row`` by chunk, their total, the nonzero
        pairs in order, and where each chunk's pairs start."""
        n_pairs = row.shape[0]
        chunks = chunk_sums.shape[1]
        for c in range(chunks):
            chunk_sum = 0
            for p in range(c * PAIR_CHUNK,
                           min(n_pairs, (c + 1) * PAIR_CHUNK)):
                chunk_sum += (row[p] & 255) + (row[p] >> 8)
            chunk_sums[i, c] = chunk_sum
        totals[i] = chunk_sums[i].sum()
        # The nonzero pairs in order, 64 found by one compare and then
        # visited bit by bit: a loop that appended every pair (a dependent
        # store each) took a quarter of the time of the pair sums; the
        # sums above vectorize.
        count = 0
        chunk = 0
        for w0 in range(0, n_pairs, WORD_BITS):
            if w0 + WORD_BITS <= n_pairs:
                bits = _nonzero_lanes(row.ctypes.data + 2 * w0)
            else:
                bits = numpy.uint64(0)
                for t in range(n_pairs - w0):
                    if row[w0 + t]:
                        bits |= numpy.uint64(1) << numpy.uint64(t)
            while bits:
                p = w0 + _lowest_bit(bits)
                bits &= bits - numpy.uint64(1)
                # Up to p's chunk, not ``while chunk * PAIR_CHUNK <= p``:
                # LLVM vectorizes that loop with an i128 division for its
                # trip count on AVX-512 hosts, a call (__udivti3) numba's
                # JIT cannot link.
                last_chunk = p // PAIR_CHUNK
                while chunk <= last_chunk:
                    starts[i, chunk] = count
                    chunk += 1
                index[i, count] = p
                values[i, count] = row[p]
                count += 1
        for c in range(chunk, chunks + 1):
            starts[i, c] = count

    @kernel_cache.njit(parallel=True)
    def first_layer(pairs, masks, limits, flip, out, split, threads):
        """The first layer, outputs as :func:`_store` writes them: unit
        ``j`` of image ``i`` fires where ``(sum_k p_ik - 2 S_ij <=
        limits_j) != flip_j``, ``S_ij`` the sum of the pixels where its
        weight is +1, by :func:`pair_sums` of the pixel pairs (uint16
        ``pairs``, ``p_i,2t | p_i,2t+1 << 8``) that are not both zero."""
        m, n_pairs = pairs.shape
        groups = masks.shape[0]
        chunks = (n_pairs + PAIR_CHUNK - 1) // PAIR_CHUNK
        # The nonzero pairs of a batch of images at a time: lists of the
        # whole batch would not stay in cache.
        batch = max(1, min(m, 256))
        index = numpy.empty((batch, n_pairs), numpy.int32)
        values = numpy.empty((batch, n_pairs), numpy.uint16)
        starts = numpy.empty((batch, chunks + 1), numpy.int64)
        chunk_sums = numpy.empty((batch, chunks), numpy.int64)
        totals = numpy.empty(batch, numpy.int32)
        for b0 in range(0, m, batch):
            size = min(batch, m - b0)
            # A parallel region costs some 3 us: not for one image.
            if size == 1:
                _list_pairs(pairs[b0], 0, index, values, starts, chunk_sums,
                            totals)
            else:
                for i in numba.prange(size):
                    _list_pairs(pairs[b0 + i], i, index, values, starts,
                                chunk_sums, totals)
            blocks = (size + PIXEL_BLOCK - 1) // PIXEL_BLOCK
            # One task per (group of units, block of images): a batch of
            # one image still spreads over the cores, and the images of a
            # block share each chunk's masks in L1. Each thread takes a run
            # of tasks (the same group's masks) with its own scratch: an
            # allocation a task would cost as much as a chunk's sums.
            tasks = groups * blocks
            for thread in numba.prange(threads):
                counters = numpy.empty((PIXEL_BLOCK, MASK_UNITS),
                                       numpy.uint16)
                sums = numpy.empty((PIXEL_BLOCK, MASK_UNITS), numpy.int32)
                since_flush = numpy.empty(PIXEL_BLOCK, numpy.int64)
                lim = numpy.empty(WORD_BITS, numpy.int32)
                flp = numpy.empty(WORD_BITS, numpy.bool_)
                for task in range(tasks * thread // threads,
                                  tasks * (thread + 1) // threads):
                    _first_task(masks, index, values, starts, chunk_sums,
                                totals, limits, flip, out, split, b0,
                                task // blocks, task % blocks * PIXEL_BLOCK,
                                min(PIXEL_BLOCK, size - task % blocks *
                                    PIXEL_BLOCK),
                                counters, sums, since_flush, lim, flp)

    @kernel_cache.njit
    def _network(pairs, masks, limits, flip, weights, hidden_limits,
                 hidden_flips, widths, last, k, n_out, threads, form):
        """The network in one call, as :mod:`simd_layers` chains its
        layers (``weights``, ``hidden_limits``, ``hidden_flips`` and the
        output ``widths`` in words: tuples, a hidden layer each; ``last``
        the last layer's weight rows): the int32 ``(m, n_out)`` dot
        products of the last layer. A batch of one saves the calls from
        Python layer by layer: 8 us of about 100 (avx2)."""
        numba.literally(form)  # one compilation per form, each its own code
        m = pairs.shape[0]
        h = numpy.zeros((m, widths[0]), numpy.uint64)
        first_layer(pairs, masks, limits, flip, h, form == 'avx2', threads)
        for i in range(len(weights)):
            out = numpy.zeros((m, widths[i + 1]), numpy.uint64)
            _layer(h, weights[i], hidden_limits[i], hidden_flips[i], out,
                   threads, form)
            h = out
        dots = numpy.empty((m, n_out), numpy.int32)
        _dot(h, last, k, dots, form)
        return dots

    # Entry points with the form a constant, as simd_kernels' are.
    @kernel_cache.njit
    def _network_avx512(pairs, masks, limits, flip, weights, hidden_limits,
                        hidden_flips, widths, last, k, n_out, threads):
        return _network(pairs, masks, limits, flip, weights, hidden_limits,
                        hidden_flips, widths, last, k, n_out, threads,
                        'avx512')

    @kernel_cache.njit
    def _network_avx2(pairs, masks, limits, flip, weights, hidden_limits,
                      hidden_flips, widths, last, k, n_out, threads):
        return _network(pairs, masks, limits, flip, weights, hidden_limits,
                        hidden_flips, widths, last, k, n_out, threads,
                        'avx2')

    #: ``NETWORKS[form](pairs, masks, limits, flip, weights, hidden_limits,
    #: hidden_flips, widths, last, k, n_out, threads)``: :func:`_network`.
    NETWORKS = {'avx512': _network_avx512, 'avx2': _network_avx2}
