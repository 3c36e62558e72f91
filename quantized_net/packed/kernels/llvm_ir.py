"""The LLVM IR the CPU kernels share.

numba has no vector types, so the kernels that need them are numba
intrinsics whose code generators write LLVM IR with llvmlite (which comes
with numba: no C compiler is needed). Operands are passed as addresses
(``array.ctypes.data``) and byte offsets, as the kernels compute them.
"""
from llvmlite import ir
from numba.core import cgutils

from quantized_net.packed.format import WORD_BITS

I1, I8, I16, I32, I64 = (ir.IntType(bits) for bits in (1, 8, 16, 32, 64))


def call(builder, name, result, *args):
    """A call of the LLVM intrinsic ``name``, of return type ``result``."""
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(result, [a.type for a in args]),
        name)
    return builder.call(fn, args)


def load(builder, address, value_type, align):
    """The ``value_type`` at the i64 ``address``."""
    return builder.load(builder.inttoptr(address, value_type.as_pointer()),
                        align=align)


def store(builder, value, address, align):
    """Stores ``value`` at the i64 ``address``."""
    builder.store(value, builder.inttoptr(address, value.type.as_pointer()),
                  align=align)


def addresses(builder, base, offsets, n):
    """``base`` plus each of the ``n`` i64 byte offsets at the i64
    address ``offsets``."""
    return [offset(builder, base, load(builder, offset(
        builder, offsets, 8 * i), I64, 8)) for i in range(n)]


def int64_at(builder, address, index):
    """Element ``index`` (an i64 value) of the int64 array at the i64
    ``address``: a tile's byte offset of its step ``index``."""
    return load(builder, offset(builder, address, builder.mul(
        index, ir.Constant(I64, 8))), I64, 8)


def offset(builder, address, *terms):
    """``address`` plus the i64 ``terms`` (values, or ints as constants)."""
    for term in terms:
        if isinstance(term, int):
            term = ir.Constant(I64, term)
        address = builder.add(address, term)
    return address


def splat(builder, value, vector_type):
    """``value`` in every lane of ``vector_type``."""
    lanes = vector_type.count
    return builder.shuffle_vector(
        builder.insert_element(ir.Constant(vector_type, None), value,
                               ir.Constant(I32, 0)),
        ir.Constant(vector_type, None),
        ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def word_lanes(builder, address, bits):
    """The :data:`WORD_BITS` integers of ``bits`` bits at ``address``, as
    the lanes of one vector: one a bit of an output word."""
    return load(builder, address, ir.VectorType(ir.IntType(bits), WORD_BITS),
                bits // 8)


def at_most(builder, values, limits):
    """The i64 word whose bit ``b`` is set where lane ``b`` of the
    :data:`WORD_BITS` int32 ``values`` is at most the int32 at ``limits +
    4 b``: one vector compare whose lanes are the bits (``vpcmpgtd`` and
    ``vmovmskps`` on AVX2), not a compare, a store and a shift a unit."""
    return builder.bitcast(
        builder.icmp_signed('<=', values, word_lanes(builder, limits, 32)),
        I64)


def nonzero(builder, values):
    """The i64 word whose bit ``b`` is set where lane ``b`` of the
    :data:`WORD_BITS` ``values`` is not 0."""
    return builder.bitcast(builder.icmp_unsigned(
        '!=', values, ir.Constant(values.type, None)), I64)
