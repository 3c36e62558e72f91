"""XNOR-popcount kernels of the packed binarized MLP, CPU and GPU.

Vectors of +-1 are packed as bits in ``uint64`` words, as
:mod:`packed_format` lays them out. For two such rows of ``k`` elements the
dot product is

.. math::

    x \\cdot w = k - 2\\,\\mathrm{popcount}(x \\oplus w),

since a product is -1 exactly where the bits differ, and the 0 padding of
both rows differs nowhere. A hidden unit fires (+1) by
:func:`packed_format.unit_fires`, ``(d >= T) != flip``; in popcount terms
(:func:`pop_limits`), where ``(popcount <= (k - T) // 2) != flip``.

The first layer takes 8-bit pixels ``p`` and computes the integer
``d = sum_k w_k p_k = 2 * sum_{k: w_k = +1} p_k - sum_k p_k``:

* on the CPU, by adding each nonzero pixel under 16-bit masks of the
  units whose weight is +1 (MNIST is 81% zeros, so most of the work is
  skipped);
* on the GPU, by bit planes as in Hubara et al. (2016):
  ``sum_{k: w_k = +1} p_k = sum_n 2^n popcount(plane_n(p) AND w)``.

Both give the same integer; every function here has a CPU (numba) and a
GPU (CuPy raw kernel) implementation, picked by the type of the arrays.
"""
import numpy

try:
    import numba
    from numba import types
    from numba.extending import intrinsic
except ImportError:  # the CPU kernels say so when called
    numba = None

from chainer import backend
from chainer.backends import cuda

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS, unpack_bits, words

MASK_TILE = 512  # units a task of the CPU first layer (a multiple of 64)
IMAGE_BLOCK = 16  # images per task of the CPU first layer
CHUNK = 256  # 16-bit sums of up to 256 pixels (<= 255 each) cannot overflow
NO_NUMBA = ('the CPU XNOR-popcount kernels need numba (pip install numba); '
            'without it, run infer_packed.py --engine blas')


def pop_limits(thresholds, k):
    """The popcount bound equivalent to ``d >= T`` for rows of ``k``
    elements: ``k - 2 pop >= T`` exactly when ``pop <= (k - T) // 2``."""
    return ((k - thresholds.astype(numpy.int64)) // 2).astype(numpy.int32)


if numba is not None:
    @intrinsic
    def _popcount(typingctx, x):
        """The CPU's population count of a uint64 (LLVM ``ctpop``)."""
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])
        return types.uint64(types.uint64), codegen

    @kernel_cache.njit(parallel=True)
    def _dot_cpu(x, w, k, out):
        for i in numba.prange(x.shape[0]):
            for j in range(w.shape[0]):
                pop = 0
                for v in range(x.shape[1]):
                    pop += _popcount(x[i, v] ^ w[j, v])
                out[i, j] = k - 2 * pop

    @kernel_cache.njit
    def inner_loop(x, w, rounds):
        """The hidden layers' inner loop, ``rounds`` times over ``w``'s rows
        against ``x``, on one core: ``bench_packed.py``'s ceiling."""
        total = 0
        for _ in range(rounds):
            for j in range(w.shape[0]):
                pop = 0
                for v in range(x.shape[0]):
                    pop += _popcount(x[v] ^ w[j, v])
                total += pop
        return total

    @kernel_cache.njit(parallel=True)
    def _sign_layer_cpu(x, w, limit, flip, out):
        n_images, n_words = out.shape
        n = w.shape[0]
        # One task per (output word, image): a batch of one image still
        # spreads over the cores, and a thread's weight rows stay cached.
        for task in numba.prange(n_words * n_images):
            word = task // n_images
            i = task % n_images
            bits = numpy.uint64(0)
            for b in range(min(WORD_BITS, n - word * WORD_BITS)):
                j = word * WORD_BITS + b
                pop = 0
                for v in range(x.shape[1]):
                    pop += _popcount(x[i, v] ^ w[j, v])
                if (pop <= limit[j]) != flip[j]:
                    bits |= numpy.uint64(1) << numpy.uint64(b)
            out[i, word] = bits

    @kernel_cache.njit(parallel=True)
    def _first_layer_cpu(pixels, masks, thresholds, flip, block, out):
        n_images, n_in = pixels.shape
        n_tiles, _, tile = masks.shape
        n = thresholds.shape[0]
        n_blocks = (n_images + block - 1) // block
        # One task per (tile of units, block of images): a batch of one
        # image spreads over the cores, and the block's images share the
        # tile's masks in cache.
        for task in numba.prange(n_tiles * n_blocks):
            t = task // n_blocks
            i0 = (task % n_blocks) * block
            # The nonzero pixels of an image and their values, padded with
            # zero values to a multiple of 4.
            nonzero = numpy.zeros(n_in + 3, numpy.int32)
            values = numpy.zeros(n_in + 3, numpy.uint16)
            part = numpy.empty(tile, numpy.uint16)
            acc = numpy.empty(tile, numpy.int64)
            for i in range(i0, min(n_images, i0 + block)):
                count = 0
                total = 0
                for k in range(n_in):
                    if pixels[i, k]:
                        nonzero[count] = k
                        values[count] = pixels[i, k]
                        total += pixels[i, k]
                        count += 1
                for q in range(count, count + 3):
                    values[q] = 0
                acc[:] = 0
                for c0 in range(0, count, CHUNK):
                    part[:] = 0
                    # Four pixels a pass: a quarter of the loads and stores
                    # of part (the zero values pad the last pass).
                    for q in range(c0, min(count, c0 + CHUNK), 4):
                        k0, k1 = nonzero[q], nonzero[q + 1]
                        k2, k3 = nonzero[q + 2], nonzero[q + 3]
                        v0, v1 = values[q], values[q + 1]
                        v2, v3 = values[q + 2], values[q + 3]
                        for u in range(tile):
                            part[u] += (v0 & masks[t, k0, u]) + \
                                (v1 & masks[t, k1, u]) + \
                                (v2 & masks[t, k2, u]) + \
                                (v3 & masks[t, k3, u])
                    for u in range(tile):
                        acc[u] += part[u]
                for word in range(tile // WORD_BITS):
                    bits = numpy.uint64(0)
                    for b in range(WORD_BITS):
                        u = word * WORD_BITS + b
                        j = t * tile + u
                        if j < n and (2 * acc[u] - total >= thresholds[j]) \
                                != flip[j]:
                            bits |= numpy.uint64(1) << numpy.uint64(b)
                    if t * tile + word * WORD_BITS < n:
                        out[i, (t * tile) // WORD_BITS + word] = bits


def _numba_required():
    if numba is None:
        raise RuntimeError(NO_NUMBA)


_GPU_SOURCE = r'''
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


def _gpu_kernel(name):
    return cuda.cupy.RawModule(code=_GPU_SOURCE).get_function(name)


if cuda.available:
    _gpu_kernel = cuda.memoize(for_each_device=True)(_gpu_kernel)


def xnor_dot(x, w, k):
    """Integer dot products of packed +-1 rows.

    .. math:: \\mathrm{out}_{ij} = k - 2\\,\\mathrm{popcount}(x_i \\oplus w_j)

    Args:
        x (numpy.ndarray or cupy.ndarray): ``uint64`` ``(m, words)``.
        w (numpy.ndarray or cupy.ndarray): ``uint64`` ``(n, words)``.
        k (int): Elements per row (the rest of the last word is padding).

    Returns:
        int32 array of shape ``(m, n)``, on the inputs' device.
    """
    xp = backend.get_array_module(x)
    out = xp.empty((x.shape[0], w.shape[0]), xp.int32)
    if xp is numpy:
        _numba_required()
        _dot_cpu(x, w, k, out)
    elif out.size:
        grid = (-(-w.shape[0] // 64), -(-x.shape[0] // 64))
        _gpu_kernel('xnor_dot')(grid, (256,), (
            x, w, numpy.int32(x.shape[0]), numpy.int32(w.shape[0]),
            numpy.int32(x.shape[1]), numpy.int32(k), out))
    return out


def _fire_bits_gpu(d, thresholds, flip):
    cupy = cuda.cupy
    m, n = d.shape
    out = cupy.empty((m, words(n)), cupy.uint64)
    if out.size:
        _gpu_kernel('fire_bits')((-(-out.size // 256),), (256,), (
            d, thresholds, flip, numpy.int32(m), numpy.int32(n),
            numpy.int32(out.shape[1]), out))
    return out


def sign_layer(x, w, k, thresholds, flip):
    """A hidden layer: packed +-1 inputs to packed +-1 outputs.

    Unit ``j`` of row ``i`` is +1 where
    ``unit_fires(d_ij, T_j, flip_j)``, ``d`` as in :func:`xnor_dot`.

    Args:
        x: ``uint64`` ``(m, words(k))``, packed inputs.
        w: ``uint64`` ``(n, words(k))``, packed weight signs.
        k (int): Inputs per unit.
        thresholds: int32 ``(n,)``.
        flip: bool ``(n,)``.

    Returns:
        ``uint64`` ``(m, words(n))``: the packed outputs, 0-padded.
    """
    xp = backend.get_array_module(x)
    if xp is not numpy:
        return _fire_bits_gpu(xnor_dot(x, w, k), thresholds, flip)
    _numba_required()
    out = numpy.empty((x.shape[0], words(w.shape[0])), numpy.uint64)
    _sign_layer_cpu(x, w, pop_limits(thresholds, k), flip, out)
    return out


def first_layer_masks(w_packed, n_in, tile=MASK_TILE):
    """The CPU first layer's form of its packed weights: ``uint16``
    ``(tiles, n_in, tile)``, 0xFFFF where unit ``t * tile + u`` has weight
    +1 on input ``k``, else 0 (units past the last are 0)."""
    n = w_packed.shape[0]
    tile = min(tile, words(n) * WORD_BITS)
    bits = unpack_bits(w_packed, n_in)
    tiles = -(-n // tile)
    masks = numpy.zeros((tiles * tile, n_in), numpy.uint16)
    masks[:n] = bits * numpy.uint16(0xFFFF)
    return numpy.ascontiguousarray(
        masks.reshape(tiles, tile, n_in).transpose(0, 2, 1))


def first_layer(pixels, w, thresholds, flip, masks=None):
    """The first layer: 8-bit pixels to packed +-1 outputs.

    Unit ``j`` of image ``i`` is +1 where
    ``unit_fires(d_ij, T_j, flip_j)``, ``d_ij = sum_k s_jk p_ik`` for weight
    signs ``s`` and pixels ``p``.

    Args:
        pixels: ``uint8`` ``(m, n_in)``.
        w: ``uint64`` ``(n, words(n_in))``, packed weight signs.
        thresholds: int32 ``(n,)``.
        flip: bool ``(n,)``.
        masks: On the CPU, :func:`first_layer_masks` of ``w`` (made here
            when not given; pass it to reuse it across calls).

    Returns:
        ``uint64`` ``(m, words(n))``: the packed outputs, 0-padded.
    """
    xp = backend.get_array_module(pixels)
    m, n_in = pixels.shape
    if xp is numpy:
        _numba_required()
        if masks is None:
            masks = first_layer_masks(w, n_in)
        out = numpy.empty((m, words(w.shape[0])), numpy.uint64)
        _first_layer_cpu(pixels, masks, thresholds, flip, IMAGE_BLOCK, out)
        return out
    cupy = cuda.cupy
    nw = w.shape[1]
    planes = cupy.empty((m, 8, nw), cupy.uint64)
    d = cupy.empty((m, w.shape[0]), cupy.int32)
    if m:
        _gpu_kernel('bit_planes')((-(-m * nw // 256),), (256,), (
            pixels, numpy.int32(m), numpy.int32(n_in), numpy.int32(nw),
            planes))
        total = pixels.sum(axis=1, dtype=cupy.int64)
        _gpu_kernel('plane_dot')((-(-m * w.shape[0] // 256),), (256,), (
            planes, total, w, numpy.int32(m), numpy.int32(w.shape[0]),
            numpy.int32(nw), d))
    return _fire_bits_gpu(d, thresholds, flip)
