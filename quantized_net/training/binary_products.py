"""A layer's product of binary operands by their bits, on the CPU.

Where both operands of a quantized linear layer's forward product are +1
and -1 alone (sign units into sign weights: the hidden layers of the bnn
networks), every term is +-1 and every partial sum an integer far below
:math:`2^{24}`, which float32 holds exactly: BLAS's product is then the
exact dot products, whatever order it adds in, and so is

.. math::

    x_i \\cdot w_j = k - 2\\,\\mathrm{popcount}(x_i \\oplus w_j)

of their bits (1 for +1), which the packed engine's kernels compute
(:mod:`~quantized_net.packed.kernels.hidden_layers`) at a fraction of a
float product's cost. Packing an operand is one pass, which also checks
that each value is +1 or -1; any other (a NaN, a zero, a real input) and
the product is BLAS's, as it is where the product is too small to gain
(:data:`MIN_MULTIPLY_ADDS`) or numba is missing.
"""
import functools

import numpy

from quantized_net import kernel_cache
from quantized_net.packed import format as packed_format
from quantized_net.quantization.float32_layout import MAGNITUDE_MASK, ONE_BITS

numba = kernel_cache.numba  # None where numba does not import
if numba is not None:  # the packed engine's kernels need it
    from quantized_net.packed.kernels import cpu_features
    from quantized_net.packed.kernels import hidden_layers
    from quantized_net.packed.kernels import layouts

#: Products of fewer multiply-adds are BLAS's: packing costs more than
#: it saves.
MIN_MULTIPLY_ADDS = 2 ** 22


if numba is not None:
    _U32, _U64 = numpy.uint32, numpy.uint64

    @kernel_cache.njit
    def _pack_signs(bits, out):
        """Bit ``j % 64`` of word ``j // 64`` of row ``i`` of ``out`` set
        where ``bits[i, j]``, a float32's pattern, has its sign bit clear;
        whether every value is +1 or -1, its magnitude bits 1.0's (where
        one is not, ``out`` is left incomplete). A whole word's 64 values
        in a loop of constant count, which LLVM vectorises."""
        rows, k = bits.shape
        full = k // 64
        magnitude, one = _U32(MAGNITUDE_MASK), _U32(ONE_BITS)
        for i in range(rows):
            row = bits[i]
            off = _U32(0)  # any magnitude other than 1.0's
            for word in range(full):
                value = _U64(0)
                for j in range(64):
                    b = row[word * 64 + j]
                    value |= _U64((b >> _U32(31)) ^ _U32(1)) << _U64(j)
                    off |= (b & magnitude) ^ one
                out[i, word] = value
            if k > full * 64:
                value = _U64(0)
                for j in range(k - full * 64):
                    b = row[full * 64 + j]
                    value |= _U64((b >> _U32(31)) ^ _U32(1)) << _U64(j)
                    off |= (b & magnitude) ^ one
                out[i, full] = value
            if off:
                return False
        return True


@functools.lru_cache(maxsize=None)
def _best_form():
    # Asking the CPU for its features costs a third of a millisecond.
    return cpu_features.best_form()


def packed_signs(a):
    """The rows of the float32 ``a`` packed as
    :func:`~quantized_net.packed.format.pack_signs` packs them, where every
    value is +1 or -1; else None."""
    out = numpy.empty((a.shape[0], packed_format.words(a.shape[1])),
                      numpy.uint64)
    bits = numpy.ascontiguousarray(a).view(numpy.uint32)
    return out if _pack_signs(bits, out) else None


def product(x, w):
    """``x @ w.T`` of the float32 matrices ``x`` ``(m, k)`` and ``w`` ``(n,
    k)`` by their bits, where both hold only +1 and -1 and the product is
    large enough to gain; else None (BLAS's product is the one to take).
    The same float32 values BLAS gives."""
    if (numba is None or not isinstance(x, numpy.ndarray)
            or not isinstance(w, numpy.ndarray) or x.ndim != 2
            or w.ndim != 2 or x.dtype != numpy.float32
            or w.dtype != numpy.float32 or x.shape[1] != w.shape[1]):
        return None
    (m, k), n = x.shape, w.shape[0]
    if m * n * k < MIN_MULTIPLY_ADDS or k >= 2 ** 24:
        return None
    x_bits = packed_signs(x)
    if x_bits is None:
        return None
    w_bits = packed_signs(w)
    if w_bits is None:
        return None
    form = _best_form()
    # On the calling thread: numba's pool and OpenBLAS's spinning threads
    # slow each other (docs/speed.md).
    with kernel_cache.calling_thread_only():
        dots = hidden_layers.dot(layouts.layout(x_bits, form),
                                 layouts.weights(w_bits, n, form), k, n,
                                 form)
    return dots.astype(numpy.float32)
