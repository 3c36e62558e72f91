"""The SIMD CPU kernels of packed inference: register-blocked tiles as
numba intrinsics that emit LLVM IR (numba itself has no vector types), and
the parallel numba loops around them. :mod:`simd_layers` lays out their
operands and calls them.

A tile takes ``MR`` activation rows and ``NR`` weight rows, keeps the
``MR * NR`` accumulators in registers and adds their sums to an int32
array. Two kinds:

``avx512``
    ``popcount(x XOR w)`` by ``vpopcntq`` (AVX-512 VPOPCNTDQ): 8 lanes of
    64 bits counted in one instruction, written as LLVM's generic
    ``ctpop`` on ``<8 x i64>``, so that the same code runs, slower but
    exact, on any CPU (the tests run its hidden layers everywhere; its
    first layer, as the avx2 form's, needs AVX2).
``avx2``
    ``popcount(x XOR w)`` by the nibble lookup of Mula, Kurz and Lemire
    (2018): ``vpshufb`` looks up the popcount of 32 four-bit values at once
    in a 16-entry table. The rows are nibble planes (see
    :mod:`simd_layers`), so ``x XOR w`` of two planes is already a table
    index: two xors, two lookups and two byte adds count 256 bit pairs,
    with no shift or mask. The byte counters are widened (``vpsadbw``)
    once per chunk of at most 31 vectors (``31 * 8 = 248`` fits a byte),
    never per vector.

The first layer's kernels are in :mod:`simd_pixels`, which uses this
module's output layout, threshold compare and layers: numba's cache
notices a change of a function's own file only, so after changing this
module, delete ``__pycache__/simd_pixels*`` too.

:func:`simd_layers.runnable_forms` says which forms the CPU can run.
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

#: Bytes of a vector step of each form's layout (see :mod:`simd_layers`).
VECTOR_BYTES = {'avx512': 64, 'avx2': 64}
#: Vector steps a tile may take before its counters could overflow.
STEP_CHUNK = {'avx512': 1 << 20, 'avx2': 31}
#: Activation rows and weight rows of each form's tile: what fits in its
#: 32 (AVX-512) or 16 (AVX2) vector registers with the operands. The avx2
#: tile is one row against eight, so that each weight vector is read by
#: one xor, which takes it from memory: 50 instructions a step, not the 60
#: of a 2 x 4 tile.
TILE = {'avx512': (4, 4), 'avx2': (1, 8)}
#: Images a hidden-layer task: their rows (32 x 512 bytes in the avx2
#: layout of 2048 inputs) stay in L1 while a word's weight rows pass by NR
#: at a time, and a word's weights are fetched once per 32 images.
IMAGE_BLOCK = 32

if numba is not None:
    _I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_NIBBLE_COUNTS = [bin(b).count('1') for b in range(16)]


def _call(builder, name, result, *args):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(result, [a.type for a in args]),
        name)
    return builder.call(fn, args)


def _tile_codegen(form, mr, nr, packed=False):
    avx2 = form == 'avx2'
    assert not avx2 or nr % 4 == 0  # row_totals sums counters 4 at a time
    vector = (ir.VectorType(_I64, 8) if form == 'avx512'
              else ir.VectorType(_I8, 32))
    # The avx2 layout interleaves a step's planes: low halves, then high.
    planes = (0, 32) if avx2 else (0,)

    def count(builder, table, x, w):
        if form == 'avx512':
            return _call(builder, 'llvm.ctpop.v8i64', vector,
                         builder.xor(x[0], w[0]))
        return builder.add(*[
            _call(builder, 'llvm.x86.avx2.pshuf.b', vector, table,
                  builder.xor(a, b)) for a, b in zip(x, w)])

    def total(builder, acc):
        # The avx512 form's counters; the avx2 form's go by row_totals.
        lane = acc.type.element
        result = _call(builder, 'llvm.vector.reduce.add.v{}i{}'.format(
            acc.type.count, lane.width), lane, acc)
        return builder.trunc(result, _I32)

    def split(builder, bits):
        # 32 bytes of packed bits as the nibble planes the layout holds.
        words = ir.VectorType(ir.IntType(16), 16)
        nibbles = ir.Constant(vector, [15] * 32)
        high = builder.bitcast(builder.lshr(builder.bitcast(bits, words),
                                            ir.Constant(words, [4] * 16)),
                               vector)
        return [builder.and_(bits, nibbles), builder.and_(high, nibbles)]

    def row_totals(builder, accs):
        # The four byte counters of a row to one <4 x i32> of their sums,
        # transposed as they are added: a reduction per counter would
        # take as long as two of the row's vector steps.
        sads = [_call(builder, 'llvm.x86.avx2.psad.bw', ir.VectorType(
            _I64, 4), acc, ir.Constant(vector, None)) for acc in accs]

        def pairs(a, b, evens, odds):
            return builder.add(*[builder.shuffle_vector(a, b, ir.Constant(
                ir.VectorType(_I32, 4), lanes)) for lanes in (evens, odds)])
        low = pairs(sads[0], sads[1], [0, 4, 2, 6], [1, 5, 3, 7])
        high = pairs(sads[2], sads[3], [0, 4, 2, 6], [1, 5, 3, 7])
        return builder.trunc(pairs(low, high, [0, 1, 4, 5], [2, 3, 6, 7]),
                             ir.VectorType(_I32, 4))

    def codegen(context, builder, signature, args):
        _, x, x_stride, w, w_stride, n_steps, out, out_stride = args
        table = ir.Constant(vector, _NIBBLE_COUNTS * 2) if avx2 else None
        # Kept in registers: LLVM promotes these slots (mem2reg).
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vector,
                                                                None))
                 for _ in range(nr)] for _ in range(mr)]

        def load(base, stride, row, offset):
            address = builder.add(builder.add(base, builder.mul(
                stride, ir.Constant(_I64, row))), offset)
            return [builder.load(builder.inttoptr(
                builder.add(address, ir.Constant(_I64, p)),
                vector.as_pointer()), align=8) for p in planes]

        def load_packed(row, offset):
            # 32 bytes of bits a step, half the planes' offset.
            address = builder.add(builder.add(w, builder.mul(
                w_stride, ir.Constant(_I64, row))), builder.lshr(
                    offset, ir.Constant(_I64, 1)))
            return split(builder, builder.load(builder.inttoptr(
                address, vector.as_pointer()), align=8))

        with cgutils.for_range(builder, n_steps) as loop:
            offset = builder.mul(loop.index, ir.Constant(
                _I64, VECTOR_BYTES[form]))
            xs = [load(x, x_stride, r, offset) for r in range(mr)]
            for c in range(nr):
                wc = (load_packed(c, offset) if avx2 and packed
                      else load(w, w_stride, c, offset))
                for r in range(mr):
                    builder.store(builder.add(builder.load(accs[r][c]), count(
                        builder, table, xs[r], wc)), accs[r][c])
        base = builder.inttoptr(out, _I32.as_pointer())
        for r in range(mr):
            row = builder.gep(base, [builder.mul(out_stride,
                                                 ir.Constant(_I64, r))])
            sums = [builder.load(acc) for acc in accs[r]]
            if avx2:
                for c in range(0, nr, 4):
                    slot = builder.bitcast(builder.gep(row, [ir.Constant(
                        _I64, c)]), ir.VectorType(_I32, 4).as_pointer())
                    builder.store(builder.add(
                        builder.load(slot, align=4),
                        row_totals(builder, sums[c:c + 4])), slot, align=4)
                continue
            for c in range(nr):
                slot = builder.gep(row, [ir.Constant(_I64, c)])
                builder.store(builder.add(builder.load(slot), total(
                    builder, sums[c])), slot)
        return context.get_dummy_value()
    return codegen


def _literal_form(form):
    if not isinstance(form, types.StringLiteral) or \
            form.literal_value not in TILE:
        raise numba.core.errors.TypingError('form must be a literal key '
                                            'of FORMS')
    return form.literal_value


def _tile_intrinsic(rows_of, packed=False):
    def tile(typingctx, form, x, x_stride, w, w_stride, n_steps, out,
             out_stride):
        """``tile(form, x, x_stride, w, w_stride, n_steps, out,
        out_stride)``: adds ``popcount(x_r XOR w_c)`` over ``n_steps``
        vector steps to the int32 ``out[r * out_stride + c]``, for the rows
        ``x + r * x_stride`` and ``w + c * w_stride`` (addresses and
        strides in bytes) of a tile of ``form``; ``packed``: avx2 weight
        rows of packed bits, 32 bytes a step, split as they are read."""
        name = _literal_form(form)
        return (types.void(form, *[types.int64] * 7),
                _tile_codegen(name, rows_of(name), TILE[name][1], packed))
    return intrinsic(tile)


if numba is not None:
    # The whole tile, and a tile of one activation row for the last rows
    # or against packed weights.
    tile = _tile_intrinsic(lambda form: TILE[form][0])
    _tile_row = _tile_intrinsic(lambda form: 1)
    _tile_packed = _tile_intrinsic(lambda form: 1, packed=True)

    @intrinsic
    def _shape(typingctx, form):
        """``(mr, nr, bytes a step, steps a chunk)`` of ``form``."""
        name = _literal_form(form)
        values = TILE[name] + (VECTOR_BYTES[name], STEP_CHUNK[name])
        result = types.UniTuple(types.int64, 4)

        def codegen(context, builder, signature, args):
            return context.make_tuple(builder, result, [
                ir.Constant(_I64, v) for v in values])
        return result(form), codegen

    @numba.njit(inline='always')
    def _pops(x, w, i0, rows, j0, units, pops, form):
        """``pops[r, c] = popcount(x[i0 + r] XOR w[j0 + c])`` for ``r <
        rows`` and ``c < units``: ``nr`` weight rows at a time against
        every row, so that they are read from memory once and from L1
        after."""
        mr, nr, step_bytes, chunk = _shape(form)
        row_bytes = x.shape[1] * 8
        n_steps = row_bytes // step_bytes
        stride = pops.shape[1]
        pops[:rows] = 0
        if w.shape[1] * 8 < row_bytes:
            # Weight rows of half the bytes: avx2 packed bits. A loop of
            # its own: one shared with the planes' costs them 25%.
            _packed_pops(x, w, i0, rows, j0, units, pops, form)
            return
        for c in range(0, units, nr):
            # w has whole tiles of rows (zero rows past n).
            for v in range(0, n_steps, chunk):
                count = min(chunk, n_steps - v)
                at = v * step_bytes
                w_at = w.ctypes.data + (j0 + c) * row_bytes + at
                for r in range(0, rows, mr):
                    x_at = x.ctypes.data + (i0 + r) * row_bytes + at
                    out_at = pops.ctypes.data + (r * stride + c) * 4
                    if r + mr <= rows:
                        tile(form, x_at, row_bytes, w_at, row_bytes, count,
                             out_at, stride)
                        continue
                    for q in range(rows - r):
                        _tile_row(form, x_at + q * row_bytes, row_bytes,
                                  w_at, row_bytes, count,
                                  out_at + q * stride * 4, stride)

    @numba.njit(inline='always')
    def _packed_pops(x, w, i0, rows, j0, units, pops, form):
        """:func:`_pops` against weight rows of packed bits."""
        _, nr, step_bytes, chunk = _shape(form)
        row_bytes = x.shape[1] * 8
        w_bytes = w.shape[1] * 8
        n_steps = row_bytes // step_bytes
        stride = pops.shape[1]
        for c in range(0, units, nr):
            for v in range(0, n_steps, chunk):
                count = min(chunk, n_steps - v)
                w_at = (w.ctypes.data + (j0 + c) * w_bytes +
                        v * step_bytes // 2)
                for r in range(rows):
                    _tile_packed(form, x.ctypes.data + (i0 + r) * row_bytes +
                                 v * step_bytes, row_bytes, w_at, w_bytes,
                                 count, pops.ctypes.data + (r * stride + c) *
                                 4, stride)

    def _at_most_codegen(builder, values, limits):
        return builder.bitcast(builder.icmp_signed('<=', values, builder.load(
            builder.inttoptr(limits, values.type.as_pointer()), align=4)),
            _I64)

    def _lanes(builder, address, bits):
        vector = ir.VectorType(ir.IntType(bits), WORD_BITS)
        return builder.load(builder.inttoptr(address, vector.as_pointer()),
                            align=bits // 8)

    @intrinsic
    def _at_most(typingctx, values, limits):
        """``_at_most(values, limits)``: the word whose bit ``b`` is set
        where the int32 ``values[b] <= limits[b]``, ``b < 64``: one vector
        compare whose 64 lanes are the bits (``vpcmpgtd`` and
        ``vmovmskps``), not a compare, a store and a shift per unit."""
        def codegen(context, builder, signature, args):
            return _at_most_codegen(builder, _lanes(builder, args[0], 32),
                                    args[1])
        return types.uint64(types.int64, types.int64), codegen

    @numba.njit(inline='always')
    def _word(limits, flip, j0, n, lim, flp):
        """The ``lim`` and ``flp`` (int32 and bool, 64 each) of units
        ``j0`` to ``j0 + 63`` of ``n``: as many as there are, the rest
        never firing, so that whole words may be compared."""
        units = min(WORD_BITS, n - j0)
        lim[:] = numpy.iinfo(numpy.int32).min
        lim[:units] = limits[j0:j0 + units]
        flp[:] = False
        flp[:units] = flip[j0:j0 + units]

    @numba.njit(inline='always')
    def _flips(flp):
        """The 64 bools ``flp`` as the bits of a word: byte ``i`` of each
        of its 8 words to bit ``56 + i`` by one multiplication."""
        flips = flp.view(numpy.uint64)
        mask = numpy.uint64(0)
        for q in range(8):
            mask |= ((flips[q] * numpy.uint64(0x0102040810204080)) >>
                     numpy.uint64(56)) << numpy.uint64(8 * q)
        return mask

    @numba.njit(inline='always')
    def _store(out, i, word, bits, split):
        """Output word ``word`` of row ``i``: as it is, or ``split`` into
        the avx2 layout's nibble planes, the next layer's input: the low
        nibbles of its 8 bytes at byte ``64 (word // 4) + 8 (word % 4)``
        of the row, the high ones 32 bytes on."""
        if not split:
            out[i, word] = bits
            return
        at = word // 4 * 8 + word % 4
        nibbles = numpy.uint64(0x0F0F0F0F0F0F0F0F)
        out[i, at] = bits & nibbles
        out[i, at + 4] = (bits >> numpy.uint64(4)) & nibbles

    @kernel_cache.njit(parallel=True)
    def _layer(x, w, limit, flip, out, threads, form):
        numba.literally(form)  # one compilation per form, each its own code
        m = x.shape[0]
        n = limit.shape[0]
        blocks = (m + IMAGE_BLOCK - 1) // IMAGE_BLOCK
        split = form == 'avx2'
        # One task per (output word, block of images): a batch of one
        # image still spreads over the cores, and a block's images share
        # the word's weight rows in L1. Each thread takes a run of tasks
        # with its own scratch.
        tasks = (n + WORD_BITS - 1) // WORD_BITS * blocks
        for thread in numba.prange(threads):
            pops = numpy.empty((IMAGE_BLOCK, WORD_BITS), numpy.int32)
            lim = numpy.empty(WORD_BITS, numpy.int32)
            flp = numpy.empty(WORD_BITS, numpy.bool_)
            for task in range(tasks * thread // threads,
                              tasks * (thread + 1) // threads):
                word = task // blocks
                i0 = (task % blocks) * IMAGE_BLOCK
                rows = min(IMAGE_BLOCK, m - i0)
                j0 = word * WORD_BITS
                _word(limit, flip, j0, n, lim, flp)
                flips = _flips(flp)
                _pops(x, w, i0, rows, j0, min(WORD_BITS, n - j0), pops, form)
                for r in range(rows):
                    _store(out, i0 + r, word, _at_most(
                        pops[r].ctypes.data, lim.ctypes.data) ^ flips, split)

    @numba.njit(inline='always')
    def _dot_block(x, w, k, out, i0, form):
        nr = _shape(form)[1]
        m, n = out.shape
        rows = min(IMAGE_BLOCK, m - i0)
        pops = numpy.empty((IMAGE_BLOCK, (n + nr - 1) // nr * nr),
                           numpy.int32)
        _pops(x, w, i0, rows, 0, n, pops, form)
        for r in range(rows):
            for j in range(n):
                out[i0 + r, j] = k - 2 * pops[r, j]

    @kernel_cache.njit(parallel=True)
    def _dot(x, w, k, out, form):
        numba.literally(form)  # one compilation per form, each its own code
        blocks = (out.shape[0] + IMAGE_BLOCK - 1) // IMAGE_BLOCK
        if blocks == 1:  # a parallel region costs some 3 us
            _dot_block(x, w, k, out, 0, form)
            return
        for task in numba.prange(blocks):
            _dot_block(x, w, k, out, task * IMAGE_BLOCK, form)

    # Entry points with the form a constant: a string argument from Python
    # would go through numba's literal dispatch on every call.
    @kernel_cache.njit
    def _layer_avx512(x, w, limit, flip, out, threads):
        _layer(x, w, limit, flip, out, threads, 'avx512')

    @kernel_cache.njit
    def _layer_avx2(x, w, limit, flip, out, threads):
        _layer(x, w, limit, flip, out, threads, 'avx2')

    @kernel_cache.njit
    def _dot_avx512(x, w, k, out):
        _dot(x, w, k, out, 'avx512')

    @kernel_cache.njit
    def _dot_avx2(x, w, k, out):
        _dot(x, w, k, out, 'avx2')

    #: ``LAYERS[form](x, w, limit, flip, out, threads)``: a hidden layer,
    #: outputs where ``(popcount(x_i XOR w_j) <= limit_j) != flip_j``, in
    #: the layout of ``form``, on ``threads`` threads.
    LAYERS = {'avx512': _layer_avx512, 'avx2': _layer_avx2}
    #: ``DOTS[form](x, w, k, out)``: ``out = k - 2 popcount(x_i XOR w_j)``.
    DOTS = {'avx512': _dot_avx512, 'avx2': _dot_avx2}
