"""A convolution's columns on the CPU, each in one numba pass: the values
and the memory layouts of Chainer's, without its passes.

Chainer's CPU convolution (``chainer.utils.conv``) makes the columns
``(N, C, kh, kw, out_h, out_w)`` with a strided copy per tap, which
``numpy.tensordot`` then copies again, transposed, into the
``(N * out_h * out_w, C * kh * kw)`` matrix it multiplies; and it adds
the input's gradient back from its columns with a strided ``+=`` per
tap. :func:`im2col` writes that matrix at once, and returns it as the
view of Chainer's shape whose transpose ``tensordot`` finds contiguous;
where ``tensordot`` would not copy (one image), it writes Chainer's
layout. Either way it multiplies the same matrix, laid out the same, so
the product has the same bits. :func:`col2im` adds each tap's column into
the padded image in Chainer's order (tap by tap, from zero), so each sum
has the same bits, and returns the same view of it.

Only what the quantized convolution uses: no dilation, no ``cover_all``,
float32.
"""
import threading
import weakref

import numpy

from quantized_net import kernel_cache

numba = kernel_cache.numba  # None where numba does not import
#: Whether numba imports, and so whether the kernels run (else Chainer's).
AVAILABLE = kernel_cache.HAVE_NUMBA


#: The most bytes of columns this thread keeps from one call to the next:
#: the ``bnn-conv`` preset's at batch 100 are 315 MB, its widest layer's
#: 180 MB.
SCRATCH_BYTES = 512 * 2 ** 20
_scratch = threading.local()


def _arrays():
    arrays = getattr(_scratch, 'arrays', None)
    if arrays is None:
        arrays = _scratch.arrays = {}
        _scratch.uses = {}
    return arrays


def scratch(shape):
    """A float32 array of ``shape`` for this thread's columns: the one the
    last call of this shape had, where this thread keeps it. A new array
    of tens of megabytes costs more in the kernel's first touch of each
    page than filling it does. The arrays kept are at most
    :data:`SCRATCH_BYTES` together: a shape that would pass it lets the
    others go."""
    arrays = _arrays()
    _scratch.uses[shape] = _scratch.uses.get(shape, 0) + 1
    out = arrays.get(shape)
    if out is None:
        out = numpy.empty(shape, numpy.float32)
        if sum(a.nbytes for a in arrays.values()) + out.nbytes > \
                SCRATCH_BYTES:
            arrays.clear()
        if out.nbytes <= SCRATCH_BYTES:
            arrays[shape] = out
    return out


def stamp(col):
    """What finds the columns ``col`` (:func:`im2col`'s) again later, where
    they are still there (:func:`kept`); it does not keep them alive."""
    transposed = col.base is not None
    base = col.base if transposed else col
    return weakref.ref(base), _scratch.uses.get(base.shape, 0), transposed


def kept(stamp):
    """The columns of ``stamp`` (:func:`stamp`), as :func:`im2col` returned
    them, where they are as it wrote them: this thread has not handed out
    their scratch array since, nor let it go; else None."""
    ref, uses, transposed = stamp
    base = ref()
    if (base is None or _arrays().get(base.shape) is not base or
            _scratch.uses.get(base.shape) != uses):
        return None
    return base.transpose(0, 3, 4, 5, 1, 2) if transposed else base


def out_size(size, k, stride, pad):
    """Output positions along an axis of ``size`` (no ``cover_all``)."""
    return (size + 2 * pad - k) // stride + 1


if AVAILABLE:
    def _columns_by_position_of(kh, kw):
        # The filters' size a constant: LLVM unrolls a window's copies
        # (for 3 x 3, twice to four times as fast as with the size a
        # variable). numba caches a closure under the values of its cells.
        @kernel_cache.njit
        def columns_by_position(padded, sy, sx, out):
            # out: contiguous (N, out_h, out_w, C, kh, kw), written in order;
            # padded contiguous. Unsigned indexes into both as flat
            # arrays: numba tests a signed index for a negative value at
            # every access (a third slower).
            n_images, channels, height, width = padded.shape
            out_h, out_w = out.shape[1:3]
            source, rows = padded.reshape(-1), out.reshape(-1)
            row_step = numpy.uint64(width)
            plane = numpy.uint64(height * width)
            one, two = numpy.uint64(1), numpy.uint64(2)
            at = numpy.uint64(0)
            for n in range(n_images):
                image = numpy.uint64(n * channels) * plane
                for oy in range(out_h):
                    top = image + numpy.uint64(oy * sy) * row_step
                    for ox in range(out_w):
                        corner = top + numpy.uint64(ox * sx)
                        for c in range(channels):
                            window = corner + numpy.uint64(c) * plane
                            if kh == 3 and kw == 3:
                                # A window's nine loads, then its nine
                                # stores. Interleaved, each store keeps the
                                # next load after it (numba's arrays may
                                # overlap, for all LLVM knows), and the
                                # copies go a value at a time.
                                middle = window + row_step
                                bottom = middle + row_step
                                a0, a1, a2 = (source[window],
                                              source[window + one],
                                              source[window + two])
                                b0, b1, b2 = (source[middle],
                                              source[middle + one],
                                              source[middle + two])
                                c0, c1, c2 = (source[bottom],
                                              source[bottom + one],
                                              source[bottom + two])
                                rows[at] = a0
                                rows[at + one] = a1
                                rows[at + two] = a2
                                rows[at + numpy.uint64(3)] = b0
                                rows[at + numpy.uint64(4)] = b1
                                rows[at + numpy.uint64(5)] = b2
                                rows[at + numpy.uint64(6)] = c0
                                rows[at + numpy.uint64(7)] = c1
                                rows[at + numpy.uint64(8)] = c2
                                at += numpy.uint64(9)
                                continue
                            for i in range(kh):
                                line = window + numpy.uint64(i) * row_step
                                for j in range(kw):
                                    rows[at] = source[line + numpy.uint64(j)]
                                    at += numpy.uint64(1)
        return columns_by_position

    _COLUMNS_BY_POSITION = {}

    def _columns_by_position(padded, kh, kw, sy, sx, out):
        kernel = _COLUMNS_BY_POSITION.get((kh, kw))
        if kernel is None:
            kernel = _COLUMNS_BY_POSITION[kh, kw] = \
                _columns_by_position_of(kh, kw)
        kernel(padded, sy, sx, out)

    @kernel_cache.njit
    def _columns_by_channel(padded, kh, kw, sy, sx, out):
        # out: contiguous (N, C, kh, kw, out_h, out_w), Chainer's layout.
        n_images, channels = padded.shape[:2]
        out_h, out_w = out.shape[4:]
        for n in range(n_images):
            for c in range(channels):
                for i in range(kh):
                    for j in range(kw):
                        for oy in range(out_h):
                            for ox in range(out_w):
                                out[n, c, i, j, oy, ox] = padded[
                                    n, c, oy * sy + i, ox * sx + j]

    @kernel_cache.njit
    def _add_columns(gcol, sy, sx, img):
        # A channel at a time, image after image: its columns are read in
        # nine runs that each go forward (with the channels inside the
        # images, the reads jumped between every channel's runs). Runs a
        # stride of 1 apart, indexed unsigned (a signed index is tested for
        # a negative value at every access), are what LLVM vectorises.
        # Each value gets its taps in Chainer's order. gcol and img
        # contiguous.
        channels, kh, kw, n_images, out_h, out_w = gcol.shape
        height, width = img.shape[2:]
        taps, values = gcol.reshape(-1), img.reshape(-1)
        row_step = numpy.uint64(width)
        step = numpy.uint64(sx)
        for c in range(channels):
            for n in range(n_images):
                plane = numpy.uint64((n * channels + c) * height * width)
                for i in range(kh):
                    for j in range(kw):
                        tap = numpy.uint64(
                            (((c * kh + i) * kw + j) * n_images + n) *
                            out_h * out_w)
                        for oy in range(out_h):
                            line = (plane + numpy.uint64(i + sy * oy) *
                                    row_step + numpy.uint64(j))
                            if sx == 1:
                                for ox in range(out_w):
                                    x = numpy.uint64(ox)
                                    values[line + x] += taps[tap + x]
                            else:
                                for ox in range(out_w):
                                    x = numpy.uint64(ox)
                                    values[line + step * x] += taps[tap + x]
                            tap += numpy.uint64(out_w)


def tensordot_copies(n_images, channels, kh, kw, out_h, out_w):
    """Whether ``numpy.tensordot`` copies Chainer's columns (contiguous,
    ``(N, C, kh, kw, out_h, out_w)``) to multiply them: their matrix
    ``(N * out_h * out_w, C * kh * kw)`` is a view of them only where an
    image's positions follow each other in memory, that is, where there
    is one image, or one value in a window, or one position (NumPy
    reshapes without a copy where it can, size-1 axes aside)."""
    return n_images > 1 and channels * kh * kw > 1 and out_h * out_w > 1


def im2col(x, kh, kw, sy, sx, ph, pw):
    """Chainer's ``im2col_cpu(x, kh, kw, sy, sx, ph, pw)``, zero-padded:
    ``(N, C, kh, kw, out_h, out_w)``. Laid out as ``numpy.tensordot``
    multiplies it: where it would copy Chainer's columns
    (:func:`tensordot_copies`), as that copy, a contiguous ``(N, out_h,
    out_w, C, kh, kw)``, of which this is a view; else as Chainer's.

    The columns are this thread's :func:`scratch`: the next call of the
    same shape overwrites them. Multiply them before.

    Args:
        x (numpy.ndarray): float32 images ``(N, C, H, W)``, any strides.
        kh, kw (int): The filters' size.
        sy, sx (int): The strides.
        ph, pw (int): The zero padding of each border.
    """
    n_images, channels, height, width = x.shape
    out_h = out_size(height, kh, sy, ph)
    out_w = out_size(width, kw, sx, pw)
    padded = numpy.zeros((n_images, channels, height + 2 * ph,
                          width + 2 * pw), numpy.float32)
    padded[:, :, ph:ph + height, pw:pw + width] = x
    if tensordot_copies(n_images, channels, kh, kw, out_h, out_w):
        out = scratch((n_images, out_h, out_w, channels, kh, kw))
        _columns_by_position(padded, kh, kw, sy, sx, out)
        return out.transpose(0, 3, 4, 5, 1, 2)
    out = scratch((n_images, channels, kh, kw, out_h, out_w))
    _columns_by_channel(padded, kh, kw, sy, sx, out)
    return out


def col2im(gcol, sy, sx, ph, pw, height, width):
    """Chainer's ``col2im_cpu(numpy.rollaxis(gcol, 3), sy, sx, ph, pw,
    height, width)``: the images ``(N, C, height, width)`` whose every
    value is the sum of its columns' values, tap by tap, as a view of the
    padded images.

    Args:
        gcol (numpy.ndarray): float32 columns ``(C, kh, kw, N, out_h,
            out_w)``, contiguous: the product ``tensordot(W, gy, (0, 1))``
            as it comes.
        sy, sx (int): The strides.
        ph, pw (int): The padding.
        height, width (int): The images' size.
    """
    channels, _, _, n_images, _, _ = gcol.shape
    img = numpy.zeros((n_images, channels, height + 2 * ph + sy - 1,
                       width + 2 * pw + sx - 1), numpy.float32)
    _add_columns(numpy.ascontiguousarray(gcol), sy, sx, img)
    return img[:, :, ph:height + ph, pw:width + pw]
