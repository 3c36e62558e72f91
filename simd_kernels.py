"""The SIMD CPU kernels of packed inference: register-blocked tiles as
numba intrinsics that emit LLVM IR (numba itself has no vector types), and
the parallel numba loops around them. :mod:`simd_layers` lays out their
operands and calls them.

A tile takes ``MR`` activation rows and ``NR`` weight rows, loads each
vector once for ``MR * NR`` products, keeps the ``MR * NR`` accumulators in
registers and adds their sums to an int32 array. Two kinds:

``avx512``
    ``popcount(x XOR w)`` by ``vpopcntq`` (AVX-512 VPOPCNTDQ): 8 lanes of
    64 bits counted in one instruction, written as LLVM's generic
    ``ctpop`` on ``<8 x i64>``, so that the same code runs, slower but
    exact, on any CPU (the tests run it everywhere).
``avx2``
    ``popcount(x XOR w)`` by the nibble lookup of Mula, Kurz and Lemire
    (2018): ``vpshufb`` looks up the popcount of 32 four-bit values at once
    in a 16-entry table. The rows are nibble planes (see
    :mod:`simd_layers`), so ``x XOR w`` of two planes is already a table
    index: two xors, two lookups and two byte adds count 256 bit pairs,
    with no shift or mask. The byte counters are widened (``vpsadbw``)
    once per chunk of at most 31 vectors (``31 * 8 = 248`` fits a byte),
    never per vector.

The first layer adds each nonzero 8-bit pixel, under byte masks of the
units whose weight is +1, to 16-bit counters of 128 units held in eight
AVX2 registers (:data:`MASK_UNITS`): MNIST is 81% zeros, and this does the
work of the nonzero pixels only.

All of the numba code is in this one file, because numba's cache
notices a change of a function's own file only.

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

from packed_format import WORD_BITS

#: Bytes of a vector step of each form's layout (see :mod:`simd_layers`).
VECTOR_BYTES = {'avx512': 64, 'avx2': 64}
#: Vector steps a tile may take before its counters could overflow.
CHUNK = {'avx512': 1 << 20, 'avx2': 31}
#: Activation rows and weight rows of each form's tile: what fits in its
#: 32 (AVX-512) or 16 (AVX2) vector registers with the operands.
TILE = {'avx512': (4, 4), 'avx2': (2, 4)}
#: Images a task: their rows (16 x 512 bytes in the avx2 layout of 2048
#: inputs) stay in L1 while a word's weight rows pass by NR at a time.
IMAGE_BLOCK = 16

if numba is not None:
    _I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_NIBBLE_COUNTS = [bin(b).count('1') for b in range(16)]


def _call(builder, name, result, *args):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(result, [a.type for a in args]),
        name)
    return builder.call(fn, args)


def _tile_codegen(form, mr, nr):
    avx2 = form == 'avx2'
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
        if avx2:
            acc = _call(builder, 'llvm.x86.avx2.psad.bw',
                        ir.VectorType(_I64, 4), acc,
                        ir.Constant(vector, None))
        lane = acc.type.element
        result = _call(builder, 'llvm.vector.reduce.add.v{}i{}'.format(
            acc.type.count, lane.width), lane, acc)
        return builder.trunc(result, _I32)

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

        with cgutils.for_range(builder, n_steps) as loop:
            offset = builder.mul(loop.index, ir.Constant(
                _I64, VECTOR_BYTES[form]))
            xs = [load(x, x_stride, r, offset) for r in range(mr)]
            for c in range(nr):
                wc = load(w, w_stride, c, offset)
                for r in range(mr):
                    builder.store(builder.add(builder.load(accs[r][c]), count(
                        builder, table, xs[r], wc)), accs[r][c])
        base = builder.inttoptr(out, _I32.as_pointer())
        for r in range(mr):
            for c in range(nr):
                slot = builder.gep(base, [builder.add(builder.mul(
                    out_stride, ir.Constant(_I64, r)), ir.Constant(_I64, c))])
                builder.store(builder.add(builder.load(slot), total(
                    builder, builder.load(accs[r][c]))), slot)
        return context.get_dummy_value()
    return codegen


def _literal_form(form):
    if not isinstance(form, types.StringLiteral) or \
            form.literal_value not in TILE:
        raise numba.core.errors.TypingError('form must be a literal key '
                                            'of FORMS')
    return form.literal_value


def _tile_intrinsic(rows_of):
    def tile(typingctx, form, x, x_stride, w, w_stride, n_steps, out,
             out_stride):
        """``tile(form, x, x_stride, w, w_stride, n_steps, out,
        out_stride)``: adds ``popcount(x_r XOR w_c)`` over ``n_steps``
        vector steps to the int32 ``out[r * out_stride + c]``, for the rows
        ``x + r * x_stride`` and ``w + c * w_stride`` (addresses and
        strides in bytes) of a tile of ``form``."""
        name = _literal_form(form)
        return (types.void(form, *[types.int64] * 7),
                _tile_codegen(name, rows_of(name), TILE[name][1]))
    return intrinsic(tile)


#: Units a masked sum keeps in registers: 8 vectors of 16 16-bit counters.
MASK_UNITS = 128


def _masked_sums_codegen(context, builder, signature, args):
    masks, stride, index, values, count, out = args
    i16x16 = ir.VectorType(ir.IntType(16), 16)
    accs = [cgutils.alloca_once_value(builder, ir.Constant(i16x16, None))
            for _ in range(MASK_UNITS // 16)]
    index = builder.inttoptr(index, _I32.as_pointer())
    values = builder.inttoptr(values, ir.IntType(16).as_pointer())
    with cgutils.for_range(builder, count) as loop:
        k = builder.sext(builder.load(builder.gep(index, [loop.index])),
                         _I64)
        value = builder.load(builder.gep(values, [loop.index]))
        value = builder.shuffle_vector(
            builder.insert_element(ir.Constant(i16x16, None), value,
                                   ir.Constant(_I32, 0)),
            ir.Constant(i16x16, None), ir.Constant(
                ir.VectorType(_I32, 16), [0] * 16))
        row = builder.add(masks, builder.mul(k, stride))
        for q, acc in enumerate(accs):
            mask = builder.sext(builder.load(builder.inttoptr(
                builder.add(row, ir.Constant(_I64, 16 * q)),
                ir.VectorType(_I8, 16).as_pointer()), align=1), i16x16)
            builder.store(builder.add(builder.load(acc),
                                      builder.and_(mask, value)), acc)
    i32x16 = ir.VectorType(_I32, 16)
    for q, acc in enumerate(accs):
        slot = builder.inttoptr(builder.add(out, ir.Constant(_I64, 64 * q)),
                                i32x16.as_pointer())
        builder.store(builder.add(builder.load(slot, align=4), builder.zext(
            builder.load(acc), i32x16)), slot, align=4)
    return context.get_dummy_value()


if numba is not None:
    @intrinsic
    def masked_sums(typingctx, masks, stride, index, values, count, out):
        """``masked_sums(masks, stride, index, values, count, out)``: adds
        ``sum_t values[t] & masks[index[t]][u]`` to the int32 ``out[u]``
        for the :data:`MASK_UNITS` units ``u`` of the byte-mask rows
        ``masks + k * stride`` (0xFF where the unit's weight is +1), over
        ``count <= 257`` int32 indices and uint16 values (``257 * 255``
        fits the 16-bit counters, kept in registers): each unit's sum of
        the pixels where its weight is +1."""
        return types.void(*[types.int64] * 6), _masked_sums_codegen

    # The whole tile, and a tile of one activation row for the last rows.
    tile = _tile_intrinsic(lambda form: TILE[form][0])
    _tile_row = _tile_intrinsic(lambda form: 1)

    @intrinsic
    def _shape(typingctx, form):
        """``(mr, nr, bytes a step, steps a chunk)`` of ``form``."""
        name = _literal_form(form)
        values = TILE[name] + (VECTOR_BYTES[name], CHUNK[name])
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
        pops[:] = 0
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
    def _bits(fires):
        """The 64 bytes ``fires`` (0 or 1) as the bits of a word, byte
        ``b`` to bit ``b``: eight at a time by one multiplication, which
        moves byte ``i`` of a word to bit ``56 + i``; the branch-free
        compare loop that fills ``fires`` vectorizes, a shift-or per bit
        would not."""
        words8 = fires.view(numpy.uint64)
        bits = numpy.uint64(0)
        for q in range(8):
            bits |= ((words8[q] * numpy.uint64(0x0102040810204080)) >>
                     numpy.uint64(56)) << numpy.uint64(8 * q)
        return bits

    @numba.njit(inline='always')
    def _store(out, i, word, bits, split):
        """Output word ``word`` of row ``i``: as it is, or ``split`` into
        the avx2 layout's nibble planes, the next layer's input."""
        if not split:
            out[i, word] = bits
            return
        out_bytes = out.view(numpy.uint8)
        at = word // 4 * 64 + word % 4 * 8
        for k in range(8):
            byte = (bits >> numpy.uint64(8 * k)) & numpy.uint64(255)
            out_bytes[i, at + k] = byte & numpy.uint64(15)
            out_bytes[i, at + 32 + k] = byte >> numpy.uint64(4)

    @numba.njit(parallel=True, cache=True)
    def _layer(x, w, limit, flip, out, form):
        numba.literally(form)  # one compilation per form, each its own code
        m = x.shape[0]
        n = limit.shape[0]
        blocks = (m + IMAGE_BLOCK - 1) // IMAGE_BLOCK
        split = form == 'avx2'
        # One task per (output word, block of images): a batch of one
        # image still spreads over the cores, and a block's images share
        # the word's weight rows in L1.
        for task in numba.prange((n + WORD_BITS - 1) // WORD_BITS * blocks):
            word = task // blocks
            i0 = (task % blocks) * IMAGE_BLOCK
            rows = min(IMAGE_BLOCK, m - i0)
            j0 = word * WORD_BITS
            units = min(WORD_BITS, n - j0)
            pops = numpy.empty((IMAGE_BLOCK, WORD_BITS), numpy.int32)
            fires = numpy.zeros(WORD_BITS, numpy.uint8)
            _pops(x, w, i0, rows, j0, units, pops, form)
            for r in range(rows):
                for b in range(units):
                    fires[b] = (pops[r, b] <= limit[j0 + b]) ^ flip[j0 + b]
                _store(out, i0 + r, word, _bits(fires), split)

    @numba.njit(parallel=True, cache=True)
    def first_layer(pixels, masks, thresholds, flip, out, split):
        """The first layer, outputs as :func:`_store` writes them: unit
        ``j`` of image ``i`` fires where ``(2 S_ij - sum_k p_ik >= T_j) !=
        flip_j``, ``S_ij`` the sum of the pixels where its weight is +1 (by
        masked sums of the nonzero pixels, 256 at a time: ``256 * 255``
        fits the 16-bit counters)."""
        m, n_in = pixels.shape
        n = thresholds.shape[0]
        groups = masks.shape[0]
        # The nonzero pixels of a chunk of images at a time: lists of the
        # whole batch would not stay in cache.
        chunk = min(m, 256)
        index = numpy.empty((chunk, n_in), numpy.int32)
        values = numpy.empty((chunk, n_in), numpy.uint16)
        counts = numpy.empty(chunk, numpy.int64)
        totals = numpy.empty(chunk, numpy.int64)
        for c0 in range(0, m, chunk):
            size = min(chunk, m - c0)
            for i in numba.prange(size):
                count = 0
                total = 0
                # Branch-free: every pixel is written, a zero one
                # overwritten by the next.
                for k in range(n_in):
                    index[i, count] = k
                    values[i, count] = pixels[c0 + i, k]
                    total += pixels[c0 + i, k]
                    count += pixels[c0 + i, k] != 0
                counts[i] = count
                totals[i] = total
            # One task per (group of units, image): a batch of one image
            # spreads over the cores; a core's next task reads the same
            # masks.
            for task in numba.prange(groups * size):
                g = task // size
                i = task % size
                sums = numpy.zeros(MASK_UNITS, numpy.int32)
                for t0 in range(0, counts[i], 256):
                    masked_sums(masks[g].ctypes.data, masks.shape[2],
                                index[i].ctypes.data + 4 * t0,
                                values[i].ctypes.data + 2 * t0,
                                min(256, counts[i] - t0), sums.ctypes.data)
                fires = numpy.empty(WORD_BITS, numpy.uint8)
                for u0 in range(0, min(MASK_UNITS, n - g * MASK_UNITS),
                                WORD_BITS):
                    j0 = g * MASK_UNITS + u0
                    fires[:] = 0
                    for b in range(min(WORD_BITS, n - j0)):
                        fires[b] = (2 * sums[u0 + b] - totals[i] >=
                                    thresholds[j0 + b]) ^ flip[j0 + b]
                    _store(out, c0 + i, j0 // WORD_BITS, _bits(fires),
                           split)

    @numba.njit(parallel=True, cache=True)
    def _dot(x, w, k, out, form):
        numba.literally(form)  # one compilation per form, each its own code
        nr = _shape(form)[1]
        m, n = out.shape
        blocks = (m + IMAGE_BLOCK - 1) // IMAGE_BLOCK
        for task in numba.prange(blocks):
            i0 = task * IMAGE_BLOCK
            rows = min(IMAGE_BLOCK, m - i0)
            pops = numpy.empty((IMAGE_BLOCK, (n + nr - 1) // nr * nr),
                               numpy.int32)
            _pops(x, w, i0, rows, 0, n, pops, form)
            for r in range(rows):
                for j in range(n):
                    out[i0 + r, j] = k - 2 * pops[r, j]

    # Entry points with the form a constant: a string argument from Python
    # would go through numba's literal dispatch on every call.
    @numba.njit(cache=True)
    def _layer_avx512(x, w, limit, flip, out):
        _layer(x, w, limit, flip, out, 'avx512')

    @numba.njit(cache=True)
    def _layer_avx2(x, w, limit, flip, out):
        _layer(x, w, limit, flip, out, 'avx2')

    @numba.njit(cache=True)
    def _dot_avx512(x, w, k, out):
        _dot(x, w, k, out, 'avx512')

    @numba.njit(cache=True)
    def _dot_avx2(x, w, k, out):
        _dot(x, w, k, out, 'avx2')

    #: ``LAYERS[form](x, w, limit, flip, out)``: a hidden layer, outputs
    #: where ``(popcount(x_i XOR w_j) <= limit_j) != flip_j``, in the
    #: layout of ``form``.
    LAYERS = {'avx512': _layer_avx512, 'avx2': _layer_avx2}
    #: ``DOTS[form](x, w, k, out)``: ``out = k - 2 popcount(x_i XOR w_j)``.
    DOTS = {'avx512': _dot_avx512, 'avx2': _dot_avx2}
