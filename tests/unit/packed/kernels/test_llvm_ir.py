"""llvm_ir.py: the IR helpers, through an intrinsic built of them."""
import numpy
import pytest

pytest.importorskip('numba')
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from quantized_net import kernel_cache  # noqa: E402
from quantized_net.packed.kernels import llvm_ir  # noqa: E402


@intrinsic
def _lanes_other_than(typingctx, address, value, limits):
    """The words of the 64 uint16 lanes at ``address + 2`` that differ
    from ``value``, and of those, as int32, at most ``limits``."""
    def codegen(context, builder, signature, args):
        address, value, limits = args
        lanes = llvm_ir.word_lanes(builder, llvm_ir.offset(
            builder, address, 2), 16)
        spread = llvm_ir.splat(builder, builder.trunc(value, llvm_ir.I16),
                               lanes.type)
        wide = builder.zext(lanes, ir.VectorType(llvm_ir.I32, 64))
        differ = llvm_ir.nonzero(builder, builder.sub(lanes, spread))
        at_most = llvm_ir.at_most(builder, wide, limits)
        return context.make_tuple(builder, signature.return_type,
                                  [differ, at_most])
    return (types.UniTuple(types.uint64, 2)(types.int64, types.int64,
                                            types.int64), codegen)


@kernel_cache.njit
def _words(values, value, limits):
    return _lanes_other_than(values.ctypes.data, value, limits.ctypes.data)


def test_lanes_compare_into_the_bits_of_a_word():
    rng = numpy.random.RandomState(0)
    values = rng.randint(0, 4, 65).astype(numpy.uint16)
    limits = rng.randint(-1, 5, 64).astype(numpy.int32)
    differ, at_most = _words(values, 2, limits)

    def word(bits):
        return int(numpy.packbits(bits, bitorder='little').view('<u8')[0])
    assert differ == word(values[1:] != 2)
    assert at_most == word(values[1:].astype(numpy.int32) <= limits)


@intrinsic
def _element(typingctx, address, index):
    def codegen(context, builder, signature, args):
        return llvm_ir.int64_at(builder, *args)
    return types.int64(types.int64, types.int64), codegen


@kernel_cache.njit
def _element_of(values, index):
    return _element(values.ctypes.data, index)


def test_an_int64_is_read_at_its_index():
    values = numpy.array([5, -2 ** 63, 2 ** 63 - 1, -7], numpy.int64)
    assert [_element_of(values, i) for i in range(4)] == values.tolist()
