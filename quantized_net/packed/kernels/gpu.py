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

Every operand is in the layout of :mod:`quantized_net.packed.format`.
"""
import numpy

from chainer.backends import cuda

from quantized_net.packed.format import words

#: The CUDA source of the kernels.
SOURCE = r'''
typedef unsigned long long u64;
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
