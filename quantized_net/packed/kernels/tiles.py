"""The popcount tiles: the inner loop of the hidden and last layers.

A tile takes ``MR`` activation rows and ``NR`` weight rows
(:data:`blocking.TILE`), keeps their ``MR * NR`` counts of
``popcount(x XOR w)`` in registers over the rows' vector steps and adds
them to an int32 array. One code generator writes every form's:

``scalar``
    64-bit words, LLVM's generic ``ctpop``: the reference, which any CPU
    runs.
``avx512``
    ``<8 x i64>`` vectors, LLVM's generic vector ``ctpop``: ``vpopcntq``
    (AVX-512 VPOPCNTDQ) counts the 8 lanes in one instruction; on other
    CPUs LLVM expands it, slower but exact (the tests run it everywhere).
``avx2``
    The nibble lookup of Mula, Kurz and Lemire (2018): ``vpshufb`` looks
    up the popcount of 32 four-bit values at once in a 16-entry table. The
    rows are nibble planes (:mod:`layouts`), so ``x XOR w`` of two planes
    is already a table index: two xors, two lookups and two byte adds
    count 256 bit pairs, with no shift or mask. The byte counters are
    widened (``vpsadbw``) once a chunk of at most
    :data:`blocking.STEP_CHUNK` steps, never per step.

:func:`pops` runs the tiles over a block of rows.
"""
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from quantized_net.packed.kernels import llvm_ir
from quantized_net.packed.kernels.blocking import STEP_CHUNK, TILE
from quantized_net.packed.kernels.layouts import VECTOR_BYTES
from quantized_net.packed.kernels.llvm_ir import I8, I16, I32, I64

#: The bits set in each nibble: what a nibble lookup table holds.
NIBBLE_COUNTS = [bin(b).count('1') for b in range(16)]
#: Vectors a step: the avx2 layout holds a step's low halves, then its
#: high ones.
_PLANES = {'scalar': 1, 'avx512': 1, 'avx2': 2}
_VECTORS = {'scalar': I64, 'avx512': ir.VectorType(I64, 8),
            'avx2': ir.VectorType(I8, 32)}


def _count(builder, form, table, x, w):
    """``popcount(x XOR w)`` of a step's planes, as the form's counter."""
    vector = _VECTORS[form]
    if form == 'avx2':
        return builder.add(*[
            llvm_ir.call(builder, 'llvm.x86.avx2.pshuf.b', vector, table,
                         builder.xor(a, b)) for a, b in zip(x, w)])
    name = 'llvm.ctpop.i64' if form == 'scalar' else 'llvm.ctpop.v8i64'
    return llvm_ir.call(builder, name, vector, builder.xor(x[0], w[0]))


def _total(builder, counter):
    """A scalar or avx512 counter's count as an i32."""
    if isinstance(counter.type, ir.VectorType):
        counter = llvm_ir.call(builder, 'llvm.vector.reduce.add.v8i64',
                               I64, counter)
    return builder.trunc(counter, I32)


def _row_totals(builder, counters):
    """Four avx2 byte counters of a row as one ``<4 x i32>`` of their
    counts, transposed as they are added: a reduction a counter would take
    as long as two of the row's steps."""
    sads = [llvm_ir.call(builder, 'llvm.x86.avx2.psad.bw',
                         ir.VectorType(I64, 4), counter,
                         ir.Constant(counter.type, None))
            for counter in counters]

    def pairs(a, b, evens, odds):
        return builder.add(*[builder.shuffle_vector(a, b, ir.Constant(
            ir.VectorType(I32, 4), lanes)) for lanes in (evens, odds)])
    low = pairs(sads[0], sads[1], [0, 4, 2, 6], [1, 5, 3, 7])
    high = pairs(sads[2], sads[3], [0, 4, 2, 6], [1, 5, 3, 7])
    return builder.trunc(pairs(low, high, [0, 1, 4, 5], [2, 3, 6, 7]),
                         ir.VectorType(I32, 4))


def _split(builder, bits):
    """32 bytes of packed bits as the avx2 layout's two nibble planes."""
    vector = _VECTORS['avx2']
    words = ir.VectorType(I16, 16)
    nibbles = ir.Constant(vector, [15] * 32)
    high = builder.bitcast(builder.lshr(builder.bitcast(bits, words),
                                        ir.Constant(words, [4] * 16)),
                           vector)
    return [builder.and_(bits, nibbles), builder.and_(high, nibbles)]


def _tile_codegen(form, mr, nr, packed=False):
    vector = _VECTORS[form]
    avx2 = form == 'avx2'
    packed = packed and avx2  # the other forms' weights are never split
    assert not avx2 or nr % 4 == 0  # _row_totals takes counters 4 at a time

    def codegen(context, builder, signature, args):
        _, x, x_stride, w, w_stride, n_steps, out, out_stride = args
        table = ir.Constant(vector, NIBBLE_COUNTS * 2) if avx2 else None
        # Kept in registers: LLVM promotes these slots (mem2reg).
        counters = [[cgutils.alloca_once_value(
            builder, ir.Constant(vector, None)) for _ in range(nr)]
            for _ in range(mr)]

        def rows(base, stride, count):
            # Pointers to the rows' first vectors, which the loop indexes:
            # loads LLVM sees are consecutive, and vectorizes in the
            # scalar form.
            return [builder.inttoptr(llvm_ir.offset(builder, base, builder.mul(
                stride, ir.Constant(I64, row))), vector.as_pointer())
                for row in range(count)]

        def load(row, index):
            return builder.load(builder.gep(row, [index]), align=8)

        x_rows, w_rows = rows(x, x_stride, mr), rows(w, w_stride, nr)
        planes = _PLANES[form]
        with cgutils.for_range(builder, n_steps) as loop:
            first = builder.mul(loop.index, ir.Constant(I64, planes))
            at = [builder.add(first, ir.Constant(I64, p))
                  for p in range(planes)]
            xs = [[load(row, i) for i in at] for row in x_rows]
            for c, w_row in enumerate(w_rows):
                # Packed weights: 32 bytes of bits a step, split.
                wc = (_split(builder, load(w_row, loop.index)) if packed
                      else [load(w_row, i) for i in at])
                for r in range(mr):
                    builder.store(builder.add(
                        builder.load(counters[r][c]),
                        _count(builder, form, table, xs[r], wc)),
                        counters[r][c])
        base = builder.inttoptr(out, I32.as_pointer())
        for r in range(mr):
            row = builder.gep(base, [builder.mul(out_stride,
                                                 ir.Constant(I64, r))])
            counts = [builder.load(counter) for counter in counters[r]]
            if avx2:
                for c in range(0, nr, 4):
                    slot = builder.bitcast(builder.gep(row, [ir.Constant(
                        I64, c)]), ir.VectorType(I32, 4).as_pointer())
                    builder.store(builder.add(
                        builder.load(slot, align=4),
                        _row_totals(builder, counts[c:c + 4])), slot,
                        align=4)
                continue
            for c in range(nr):
                slot = builder.gep(row, [ir.Constant(I64, c)])
                builder.store(builder.add(builder.load(slot), _total(
                    builder, counts[c])), slot)
        return context.get_dummy_value()
    return codegen


def _literal_form(form):
    if not isinstance(form, types.StringLiteral) or \
            form.literal_value not in TILE:
        raise numba.core.errors.TypingError(
            'form must be a literal name of a form, one of {}'.format(
                ', '.join(TILE)))
    return form.literal_value


def _tile_intrinsic(rows_of, packed=False):
    def tile(typingctx, form, x, x_stride, w, w_stride, n_steps, out,
             out_stride):
        """``tile(form, x, x_stride, w, w_stride, n_steps, out,
        out_stride)``: adds ``popcount(x_r XOR w_c)`` over ``n_steps``
        vector steps to the int32 ``out[r * out_stride + c]``, for the rows
        ``x + r * x_stride`` and ``w + c * w_stride`` (addresses and
        strides in bytes) of a tile of ``form``."""
        name = _literal_form(form)
        return (types.void(form, *[types.int64] * 7),
                _tile_codegen(name, rows_of(name), TILE[name][1], packed))
    return intrinsic(tile)


#: The whole tile.
tile = _tile_intrinsic(lambda form: TILE[form][0])
#: A tile of one activation row: the last rows of a block.
tile_row = _tile_intrinsic(lambda form: 1)
#: The avx2 tile of one activation row against weight rows of packed
#: bits, 32 bytes a step, split as they are read (for the other forms, as
#: tile_row: their weights have no packed rows).
tile_packed = _tile_intrinsic(lambda form: 1, packed=True)


@intrinsic
def tile_shape(typingctx, form):
    """``(mr, nr, bytes a step, steps a chunk)`` of ``form``'s tile."""
    name = _literal_form(form)
    values = TILE[name] + (VECTOR_BYTES[name], STEP_CHUNK[name])
    result = types.UniTuple(types.int64, 4)

    def codegen(context, builder, signature, args):
        return context.make_tuple(builder, result, [
            ir.Constant(I64, v) for v in values])
    return result(form), codegen


@numba.njit(inline='always')
def pops(x, w, i0, rows, j0, units, counts, form):
    """``counts[r, c] = popcount(x[i0 + r] XOR w[j0 + c])`` for ``r <
    rows`` and ``c < units``: ``nr`` weight rows at a time against every
    row, so that they are read from memory once and from L1 after. ``w``
    has whole tiles of rows (zero rows past the last unit)."""
    mr, nr, step_bytes, chunk = tile_shape(form)
    row_bytes = x.shape[1] * 8
    n_steps = row_bytes // step_bytes
    stride = counts.shape[1]
    counts[:rows] = 0
    if w.shape[1] * 8 < row_bytes:
        # Weight rows of half the bytes: avx2 packed bits. A loop of its
        # own: one shared with the planes' slows theirs.
        _packed_pops(x, w, i0, rows, j0, units, counts, form)
        return
    for c in range(0, units, nr):
        for v in range(0, n_steps, chunk):
            count = min(chunk, n_steps - v)
            at = v * step_bytes
            w_at = w.ctypes.data + (j0 + c) * row_bytes + at
            for r in range(0, rows, mr):
                x_at = x.ctypes.data + (i0 + r) * row_bytes + at
                out_at = counts.ctypes.data + (r * stride + c) * 4
                if r + mr <= rows:
                    tile(form, x_at, row_bytes, w_at, row_bytes, count,
                         out_at, stride)
                    continue
                for q in range(rows - r):
                    tile_row(form, x_at + q * row_bytes, row_bytes, w_at,
                             row_bytes, count, out_at + q * stride * 4,
                             stride)


@numba.njit(inline='always')
def _packed_pops(x, w, i0, rows, j0, units, counts, form):
    """:func:`pops` against avx2 weight rows of packed bits."""
    _, nr, step_bytes, chunk = tile_shape(form)
    row_bytes = x.shape[1] * 8
    w_bytes = w.shape[1] * 8
    n_steps = row_bytes // step_bytes
    stride = counts.shape[1]
    for c in range(0, units, nr):
        for v in range(0, n_steps, chunk):
            count = min(chunk, n_steps - v)
            w_at = w.ctypes.data + (j0 + c) * w_bytes + v * step_bytes // 2
            for r in range(rows):
                tile_packed(form, x.ctypes.data + (i0 + r) * row_bytes +
                            v * step_bytes, row_bytes, w_at, w_bytes, count,
                            counts.ctypes.data + (r * stride + c) * 4,
                            stride)
