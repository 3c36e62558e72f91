"""The memory layouts NumPy gives results, for kernels that replace its
expressions.

NumPy adds an array's values in memory order, so a sum of the same values
laid out otherwise can round otherwise: a kernel that stands for a NumPy
expression must hand on its result laid out as NumPy's, for the sums
after it (a convolution's bias gradient, batch normalisation) to add in
NumPy's order. NumPy lays out an elementwise result as its operands where
they agree, in C order where they do not (:func:`elementwise_result`);
a kernel then runs in the result's memory order (:func:`memory_order`).
"""
import numpy


def elementwise_result(operands, dtype):
    """An empty array laid out as NumPy lays out the result of an
    elementwise operation (a ufunc) on ``operands``, arrays of one shape,
    in ``dtype``: NumPy's own iterator allocates it, as it does a ufunc's
    output."""
    flags = [['readonly']] * len(operands) + [['writeonly', 'allocate']]
    iterator = numpy.nditer(
        list(operands) + [None], flags=['zerosize_ok'], op_flags=flags,
        op_dtypes=[a.dtype for a in operands] + [dtype], order='K')
    return iterator.operands[-1]


def memory_order(a):
    """The axes of ``a``, a dense array in some axis order, from the
    outermost in memory to the innermost: ``a.transpose(memory_order(a))``
    is C-contiguous."""
    return tuple(sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis])))


def flat_in(order, a):
    """``a``'s values in the memory order ``order`` of another array, as a
    1-d array: a view where ``a`` is laid out in that order, else a
    copy."""
    return numpy.ascontiguousarray(a.transpose(order)).reshape(-1)
