"""C-contiguous copies of images laid out channels last, in one pass
along their rows.

A convolution leaves its output laid out channels last, ``(N, H, W, C)``
in memory; the kernels that read it a value at a time in C order (the
quantizers' loops, batch normalisation's sums image by image) take a
C-contiguous copy. NumPy makes that copy in C order, each value it reads
of a row on a cache line of its own; :func:`c_contiguous` reads the rows
in order and writes each channel's plane, in well under half the time
(docs/speed.md). The same values: a copy.
"""
import numpy

from quantized_net import kernel_cache

numba = kernel_cache.numba  # None where numba does not import


if numba is not None:
    @kernel_cache.njit
    def _planes_of_rows(rows, planes):
        # rows: C-contiguous (N, S, C); planes: C-contiguous (N, C, S).
        # Flat and unsigned: numba tests a signed index for a negative
        # value at every access.
        n_images, size, channels = rows.shape
        source, out = rows.reshape(-1), planes.reshape(-1)
        plane = numpy.uint64(size)
        for n in range(n_images):
            image = numpy.uint64(n * size * channels)
            for s in range(size):
                row = image + numpy.uint64(s * channels)
                at = image + numpy.uint64(s)
                for c in range(channels):
                    out[at] = source[row + numpy.uint64(c)]
                    at += plane


def channels_last(a):
    """Whether ``a`` is images ``(N, C, H, W)`` laid out channels last
    (``a.transpose(0, 2, 3, 1)`` C-contiguous), and not C-contiguous."""
    return (a.ndim == 4 and not a.flags.c_contiguous and
            a.transpose(0, 2, 3, 1).flags.c_contiguous)


def c_contiguous(a):
    """``numpy.ascontiguousarray(a)``: ``a`` where it is C-contiguous,
    else a C-contiguous copy; of images laid out channels last
    (:func:`channels_last`), made along their rows where numba imports.

    Args:
        a (numpy.ndarray): Any array.
    """
    if numba is None or not channels_last(a) or a.size == 0:
        return numpy.ascontiguousarray(a)
    n, c, h, w = a.shape
    out = numpy.empty(a.shape, a.dtype)
    _planes_of_rows(a.transpose(0, 2, 3, 1).reshape(n, h * w, c),
                    out.reshape(n, c, h * w))
    return out
