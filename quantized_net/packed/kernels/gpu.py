"""The packed network's layers on the GPU: CuPy raw kernels, compiled
together as one module for each device.

``xnor_dot``
    ``out[i, j] = k - 2 popcount(x_i XOR w_j)``: a tiled product, 64 x 64
    outputs a block of 256 threads, 4 x 4 a thread, ``__popcll``.
``bit_planes``, ``plane_dot``
    The first layer by the bit planes of its pixels, as in Hubara et al.
    (2016): ``sum_{k: w_k = +1} p_k = sum_n 2^n popcount(plane_n(p) AND
    w)``, the same integer the CPU's pixel pairs sum.
``fire_bits``
    The threshold test :func:`quantized_net.packed.format.unit_fires`,
    packed into words of 64 units.
``bit_columns``, ``pixel_convolution``, ``convolution_bits``
    A ConvNet's convolutions: the taps of each output position as a row of
    bits for ``xnor_dot`` (the first convolution's exact sums on the pixel
    integers), then the sums corrected for the border's class of taps
    (:mod:`borders`), max-pooled and thresholded into bits, each position's
    filters together (:mod:`convolutions` says why this is exact).

Every operand is in the layout of :mod:`quantized_net.packed.format`.
"""
import numpy

from chainer.backends import cuda

from quantized_net.packed.format import words

#: The CUDA source of the kernels.
SOURCE = r'''
typedef unsigned long long u64;
#define LLONG_MIN (-9223372036854775807LL - 1)
#define BM 64
#define BN 64
#define BK 16

// out[i, j] = k - 2 popcount(x[i] ^ w[j]): 64x64 outputs a block of 256
// threads, 4x4 a thread, rows staged through shared memory BK words at a
// time. Words past a row's end read as 0 in both operands.
extern "C" __global__ void xnor_dot(const u64* __restrict__ x,
                                   const u64* __restrict__ w,
                                   int m, int n, int nw, int k,
                                   int* __restrict__ out) {
    __shared__ u64 xs[BK][BM];
    __shared__ u64 ws[BK][BN];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    int acc[4][4] = {{0}};
    for (int v0 = 0; v0 < nw; v0 += BK) {
        for (int e = threadIdx.x; e < BM * BK; e += 256) {
            int r = e / BK, c = e % BK, v = v0 + c;
            xs[c][r] = (row0 + r < m && v < nw)
                ? x[(size_t)(row0 + r) * nw + v] : 0ULL;
            ws[c][r] = (col0 + r < n && v < nw)
                ? w[(size_t)(col0 + r) * nw + v] : 0ULL;
        }
        __syncthreads();
        for (int c = 0; c < BK; ++c) {
            u64 a[4], b[4];
            for (int r = 0; r < 4; ++r) a[r] = xs[c][ty * 4 + r];
            for (int q = 0; q < 4; ++q) b[q] = ws[c][tx + 16 * q];
            for (int r = 0; r < 4; ++r)
                for (int q = 0; q < 4; ++q)
                    acc[r][q] += __popcll(a[r] ^ b[q]);
        }
        __syncthreads();
    }
    for (int r = 0; r < 4; ++r) {
        int i = row0 + ty * 4 + r;
        for (int q = 0; q < 4; ++q) {
            int j = col0 + tx + 16 * q;
            if (i < m && j < n) out[(size_t)i * n + j] = k - 2 * acc[r][q];
        }
    }
}

// The 8 bit planes of 8-bit pixels: planes[i, b, v] holds bit b of
// pixels k = 64 v .. 64 v + 63 of image i (bit k % 64 of word v).
extern "C" __global__ void bit_planes(const unsigned char* __restrict__ p,
                                     int m, int n_in, int nw,
                                     u64* __restrict__ planes) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= m * nw) return;
    int i = t / nw, v = t % nw;
    u64 plane[8] = {0};
    for (int b = 0; b < 64 && v * 64 + b < n_in; ++b) {
        unsigned int value = p[(size_t)i * n_in + v * 64 + b];
        for (int n = 0; n < 8; ++n)
            plane[n] |= (u64)((value >> n) & 1u) << b;
    }
    for (int n = 0; n < 8; ++n)
        planes[((size_t)i * 8 + n) * nw + v] = plane[n];
}

// First layer: d[i, j] = 2 sum_n 2^n popcount(plane_n(i) & w[j]) - total[i].
extern "C" __global__ void plane_dot(const u64* __restrict__ planes,
                                    const long long* __restrict__ total,
                                    const u64* __restrict__ w,
                                    int m, int n, int nw,
                                    int* __restrict__ out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)m * n) return;
    int i = (int)(t / n), j = (int)(t % n);
    long long positive = 0;
    for (int b = 0; b < 8; ++b) {
        int count = 0;
        for (int v = 0; v < nw; ++v)
            count += __popcll(planes[((size_t)i * 8 + b) * nw + v]
                              & w[(size_t)j * nw + v]);
        positive += (long long)count << b;
    }
    out[(size_t)i * n + j] = (int)(2 * positive - total[i]);
}

// Packs unit_fires(d, T, flip) = (d >= T) != flip into words of 64 units.
extern "C" __global__ void fire_bits(const int* __restrict__ d,
                                    const int* __restrict__ thresholds,
                                    const bool* __restrict__ flip,
                                    int m, int n, int n_words,
                                    u64* __restrict__ out) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= m * n_words) return;
    int i = t / n_words, word = t % n_words;
    u64 bits = 0;
    for (int b = 0; b < 64 && word * 64 + b < n; ++b) {
        int j = word * 64 + b;
        if ((d[(size_t)i * n + j] >= thresholds[j]) != flip[j])
            bits |= 1ULL << b;
    }
    out[t] = bits;
}

// A convolution's taps of packed activations h (images, height, width,
// nw) as rows of ksize * ksize * nw words, one per output position, tap
// after tap; taps outside the image are 0 words.
extern "C" __global__ void bit_columns(const u64* __restrict__ h,
                                      int images, int height, int width,
                                      int nw, int ksize, int stride,
                                      int pad, int out_h, int out_w,
                                      u64* __restrict__ out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int taps = ksize * ksize;
    if (t >= (long long)images * out_h * out_w * taps * nw) return;
    int q = (int)(t % nw);
    long long r = t / nw;
    int tap = (int)(r % taps);
    long long row = r / taps;
    int x = (int)(row % out_w);
    long long rest = row / out_w;
    int y = (int)(rest % out_h), i = (int)(rest / out_h);
    int iy = y * stride - pad + tap / ksize;
    int ix = x * stride - pad + tap % ksize;
    out[t] = (iy >= 0 && iy < height && ix >= 0 && ix < width)
        ? h[(((size_t)i * height + iy) * width + ix) * nw + q] : 0ULL;
}

// The first convolution's exact sums: d[(i, y, x), j] = sum over the taps
// inside the image of w[j, c, ky, kx] * (a p + b), the pixels p
// (images, channels, height, width), the signs w +-1.
extern "C" __global__ void pixel_convolution(
        const unsigned char* __restrict__ p, int a, int b,
        const signed char* __restrict__ w, int images, int channels,
        int height, int width, int n, int ksize, int stride, int pad,
        int out_h, int out_w, int* __restrict__ d) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)images * out_h * out_w * n) return;
    int j = (int)(t % n);
    long long row = t / n;
    int x = (int)(row % out_w);
    long long rest = row / out_w;
    int y = (int)(rest % out_h), i = (int)(rest / out_h);
    int sum = 0;
    for (int c = 0; c < channels; ++c)
        for (int ky = 0; ky < ksize; ++ky) {
            int iy = y * stride - pad + ky;
            if (iy < 0 || iy >= height) continue;
            for (int kx = 0; kx < ksize; ++kx) {
                int ix = x * stride - pad + kx;
                if (ix < 0 || ix >= width) continue;
                int value = a * p[(((size_t)i * channels + c) * height + iy)
                                  * width + ix] + b;
                sum += w[(((size_t)j * channels + c) * ksize + ky) * ksize
                         + kx] * value;
            }
        }
    d[t] = sum;
}

// A convolution's outputs to bits: d[(i, y, x), j] + offset[class(y, x),
// j] is filter j's sum at (y, x); its maximum over each pool x pool window
// (pool 1: none) passes unit_fires, packed along the filters into
// out (images, conv_h / pool, conv_w / pool, n_words).
extern "C" __global__ void convolution_bits(
        const int* __restrict__ d, const int* __restrict__ offset,
        const int* __restrict__ classes, const int* __restrict__ thresholds,
        const bool* __restrict__ flip, int images, int conv_h, int conv_w,
        int n, int pool, int n_words, u64* __restrict__ out) {
    int pooled_h = conv_h / pool, pooled_w = conv_w / pool;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)images * pooled_h * pooled_w * n_words) return;
    int word = (int)(t % n_words);
    long long position = t / n_words;
    int px = (int)(position % pooled_w);
    long long rest = position / pooled_w;
    int py = (int)(rest % pooled_h), i = (int)(rest / pooled_h);
    u64 bits = 0;
    for (int b = 0; b < 64 && word * 64 + b < n; ++b) {
        int j = word * 64 + b;
        long long best = LLONG_MIN;
        for (int dy = 0; dy < pool; ++dy)
            for (int dx = 0; dx < pool; ++dx) {
                int y = py * pool + dy, x = px * pool + dx;
                long long row = ((long long)i * conv_h + y) * conv_w + x;
                long long sum = (long long)d[row * n + j] +
                    offset[(size_t)classes[y * conv_w + x] * n + j];
                if (sum > best) best = sum;
            }
        if ((best >= thresholds[j]) != flip[j]) bits |= 1ULL << b;
    }
    out[t] = bits;
}
'''


def _kernel(name):
    return cuda.cupy.RawModule(code=SOURCE).get_function(name)


if cuda.available:
    _kernel = cuda.memoize(for_each_device=True)(_kernel)


def _blocks(threads):
    return (-(-threads // 256),), (256,)


def xnor_dot(x, w, k):
    """Integer dot products of packed +-1 rows.

    .. math:: \\mathrm{out}_{ij} = k - 2\\,\\mathrm{popcount}(x_i
        \\oplus w_j)

    Args:
        x (cupy.ndarray): ``uint64`` ``(m, words(k))``.
        w (cupy.ndarray): ``uint64`` ``(n, words(k))``.
        k (int): Elements per row (the rest of the last word is padding).

    Returns:
        cupy.ndarray: int32 ``(m, n)``.
    """
    cupy = cuda.cupy
    out = cupy.empty((x.shape[0], w.shape[0]), cupy.int32)
    if out.size:
        grid = (-(-w.shape[0] // 64), -(-x.shape[0] // 64))
        _kernel('xnor_dot')(grid, (256,), (
            x, w, numpy.int32(x.shape[0]), numpy.int32(w.shape[0]),
            numpy.int32(x.shape[1]), numpy.int32(k), out))
    return out


def fire_bits(d, thresholds, flip):
    """``unit_fires(d, thresholds, flip)`` of the int32 ``(m, n)`` dot
    products ``d``, packed: ``uint64`` ``(m, words(n))``."""
    cupy = cuda.cupy
    m, n = d.shape
    out = cupy.empty((m, words(n)), cupy.uint64)
    if out.size:
        _kernel('fire_bits')(*_blocks(out.size), (
            d, thresholds, flip, numpy.int32(m), numpy.int32(n),
            numpy.int32(out.shape[1]), out))
    return out


def sign_layer(x, w, k, thresholds, flip):
    """A hidden layer: unit ``j`` of row ``i`` is +1 where
    ``unit_fires(d_ij, T_j, flip_j)``, ``d`` the :func:`xnor_dot` of the
    packed inputs ``x`` and weight signs ``w`` of ``k`` elements a row.

    Returns:
        cupy.ndarray: ``uint64`` ``(m, words(n))``, the packed outputs.
    """
    return fire_bits(xnor_dot(x, w, k), thresholds, flip)


def first_layer(pixels, w, thresholds, flip):
    """The first layer: unit ``j`` of image ``i`` is +1 where
    ``unit_fires(d_ij, T_j, flip_j)``, ``d_ij = sum_k s_jk p_ik`` for the
    weight signs ``s`` (packed in ``w``) and the ``uint8`` pixels ``p``
    ``(m, n_in)``.

    Returns:
        cupy.ndarray: ``uint64`` ``(m, words(n))``, the packed outputs.
    """
    cupy = cuda.cupy
    m, n_in = pixels.shape
    n, nw = w.shape
    planes = cupy.empty((m, 8, nw), cupy.uint64)
    d = cupy.empty((m, n), cupy.int32)
    if m:
        _kernel('bit_planes')(*_blocks(m * nw), (
            pixels, numpy.int32(m), numpy.int32(n_in), numpy.int32(nw),
            planes))
        total = pixels.sum(axis=1, dtype=cupy.int64)
        _kernel('plane_dot')(*_blocks(m * n), (
            planes, total, w, numpy.int32(m), numpy.int32(n),
            numpy.int32(nw), d))
    return fire_bits(d, thresholds, flip)


def convolution_bits(d, offset, classes, thresholds, flip, images,
                     conv_shape, pool):
    """A convolution's output bits from its sums: filter ``j`` at output
    position ``(y, x)`` sums ``d[(i, y, x), j] + offset[classes[y, x],
    j]``; the maximum over each ``pool`` x ``pool`` window (1: none)
    fires where :func:`~quantized_net.packed.format.unit_fires`.

    Args:
        d (cupy.ndarray): int32 ``(images * height * width, filters)``.
        offset (cupy.ndarray): int32 ``(classes, filters)``.
        classes (cupy.ndarray): int32 class of each output position.
        thresholds, flip (cupy.ndarray): int32 and bool per filter.
        images (int): Images in ``d``.
        conv_shape (tuple): ``(filters, height, width)`` of the sums.
        pool (int): The pooling window's side, 1 for none.

    Returns:
        cupy.ndarray: ``uint64`` ``(images, height // pool, width // pool,
        words(filters))``.
    """
    cupy = cuda.cupy
    n, height, width = conv_shape
    out = cupy.empty((images, height // pool, width // pool, words(n)),
                     cupy.uint64)
    if out.size:
        _kernel('convolution_bits')(*_blocks(out.size), (
            d, offset, classes, thresholds, flip, numpy.int32(images),
            numpy.int32(height), numpy.int32(width), numpy.int32(n),
            numpy.int32(pool), numpy.int32(out.shape[3]), out))
    return out


def bit_columns(h, conv):
    """The taps of every output position of convolution ``conv`` of the
    packed activations ``h`` ``(images, height, width, words(channels))``:
    ``uint64`` ``(images * out_h * out_w, ksize * ksize * words)``, taps
    outside the image 0."""
    cupy = cuda.cupy
    images, height, width, nw = h.shape
    _, out_h, out_w = conv.conv_shape()
    out = cupy.empty((images * out_h * out_w, conv.ksize ** 2 * nw),
                     cupy.uint64)
    if out.size:
        _kernel('bit_columns')(*_blocks(out.size), (
            cupy.ascontiguousarray(h), numpy.int32(images),
            numpy.int32(height), numpy.int32(width), numpy.int32(nw),
            numpy.int32(conv.ksize), numpy.int32(conv.stride),
            numpy.int32(conv.pad), numpy.int32(out_h), numpy.int32(out_w),
            out))
    return out


def pixel_convolution(pixels, values, signs, conv):
    """The first convolution's exact int32 sums ``(images * out_h * out_w,
    filters)``: the taps inside the image of the pixel integers ``a p +
    b`` (``values``, :data:`format.PIXEL_VALUES`) times the filters'
    ``int8`` signs ``(filters, channels * ksize * ksize)``, of the
    ``uint8`` ``pixels`` ``(images, channels * height * width)``."""
    cupy = cuda.cupy
    channels, height, width = conv.in_shape
    _, out_h, out_w = conv.conv_shape()
    a, b = values
    out = cupy.empty((len(pixels) * out_h * out_w, conv.filters),
                     cupy.int32)
    if out.size:
        _kernel('pixel_convolution')(*_blocks(out.size), (
            cupy.ascontiguousarray(pixels), numpy.int32(a), numpy.int32(b),
            signs, numpy.int32(len(pixels)), numpy.int32(channels),
            numpy.int32(height), numpy.int32(width),
            numpy.int32(conv.filters), numpy.int32(conv.ksize),
            numpy.int32(conv.stride), numpy.int32(conv.pad),
            numpy.int32(out_h), numpy.int32(out_w), out))
    return out
