"""xnor_popcount.py: the packed kernels against float +-1 products, and the
GPU kernels against the CPU ones."""
import numpy
import pytest

from chainer.backends import cuda

from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import xnor_popcount
from helpers import random_pixels, random_signs, reference_fires


SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (4, 129, 200),
          (2, 64, 784), (0, 5, 10)]


@pytest.mark.parametrize('m,n,k', SHAPES)
def test_xnor_dot_equals_float_product(m, n, k):
    rng = numpy.random.RandomState(k)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    d = xnor_popcount.xnor_dot(packed_format.pack_signs(x),
                               packed_format.pack_signs(w), k)
    assert d.dtype == numpy.int32
    numpy.testing.assert_array_equal(d, x.dot(w.T))


def test_xnor_dot_extremes():
    k = 130
    ones = packed_format.pack_signs(numpy.ones((1, k)))
    minus = packed_format.pack_signs(-numpy.ones((1, k)))
    assert xnor_popcount.xnor_dot(ones, ones, k).tolist() == [[k]]
    assert xnor_popcount.xnor_dot(ones, minus, k).tolist() == [[-k]]


@pytest.mark.parametrize('m,n,k', SHAPES + [(3, 9, 8257), (2, 130, 4096)])
def test_sign_layer_equals_thresholded_float_product(m, n, k):
    rng = numpy.random.RandomState(k + 1)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    thresholds = rng.randint(-k // 4, k // 4 + 1, n).astype(numpy.int32)
    thresholds[:2] = [-k - 1, k + 1][:n]  # always, never
    flip = rng.rand(n) < 0.5
    out = xnor_popcount.sign_layer(packed_format.pack_signs(x),
                                   packed_format.pack_signs(w), k,
                                   thresholds, flip)
    numpy.testing.assert_array_equal(
        out, reference_fires(x.dot(w.T), thresholds, flip))


def test_pop_limits_match_dot_thresholds():
    k = 9
    thresholds = numpy.arange(-k - 2, k + 3, dtype=numpy.int32)
    limits = xnor_popcount.pop_limits(thresholds, k)
    pop = numpy.arange(k + 1)[:, None]
    numpy.testing.assert_array_equal(pop <= limits,
                                     k - 2 * pop >= thresholds)


@pytest.mark.parametrize('m,n,k', SHAPES)
def test_first_layer_equals_thresholded_pixel_product(m, n, k):
    rng = numpy.random.RandomState(k + 2)
    pixels, w = random_pixels(rng, m, k), random_signs(rng, (n, k))
    thresholds = rng.randint(-60 * k, 60 * k, n).astype(numpy.int32)
    flip = rng.rand(n) < 0.5
    out = xnor_popcount.first_layer(pixels, packed_format.pack_signs(w),
                                    thresholds, flip)
    d = pixels.astype(numpy.float32).dot(w.T)
    numpy.testing.assert_array_equal(out, reference_fires(d, thresholds,
                                                          flip))


def test_first_layer_sums_beyond_sixteen_bits():
    # 784 white pixels: 784 * 255 overflows the 16-bit partial sums unless
    # they are flushed every 256 pixels.
    k, n = 784, 3
    pixels = numpy.full((2, k), 255, numpy.uint8)
    w = numpy.ones((n, k), numpy.float32)
    w[1, :400] = -1
    exact = pixels.astype(numpy.int64).dot(w.T.astype(numpy.int64))[0]
    for delta, fires in ((0, True), (1, False)):
        out = xnor_popcount.first_layer(
            pixels, packed_format.pack_signs(w),
            (exact + delta).astype(numpy.int32), numpy.zeros(n, bool))
        assert out.tolist() == [[7 if fires else 0]] * 2


@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k', SHAPES + [(130, 200, 2048)])
def test_gpu_kernels_equal_float_products(m, n, k):
    # Against the float products, not the CPU kernels: those need numba,
    # which a GPU machine may lack.
    cupy = cuda.cupy
    rng = numpy.random.RandomState(k + 3)
    xs, ws = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    x, w = (cupy.asarray(packed_format.pack_signs(a)) for a in (xs, ws))
    pixels = random_pixels(rng, m, k)
    thresholds = rng.randint(-k, k + 1, n).astype(numpy.int32)
    flip = rng.rand(n) < 0.5
    numpy.testing.assert_array_equal(
        cupy.asnumpy(xnor_popcount.xnor_dot(x, w, k)), xs.dot(ws.T))
    numpy.testing.assert_array_equal(
        cupy.asnumpy(xnor_popcount.sign_layer(
            x, w, k, cupy.asarray(thresholds), cupy.asarray(flip))),
        reference_fires(xs.dot(ws.T), thresholds, flip))
    thresholds *= 60
    numpy.testing.assert_array_equal(
        cupy.asnumpy(xnor_popcount.first_layer(
            cupy.asarray(pixels), w, cupy.asarray(thresholds),
            cupy.asarray(flip))),
        reference_fires(pixels.astype(numpy.float64).dot(ws.T), thresholds,
                        flip))
