"""gpu.py: the raw kernels against the float +-1 products (not against
the CPU kernels: those need numba, which a GPU machine may lack)."""
import numpy
import pytest

from chainer.backends import cuda

from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import gpu
from helpers import random_pixels, random_signs, reference_fires

SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (4, 129, 200),
          (2, 64, 784), (0, 5, 10), (130, 200, 2048)]


@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k', SHAPES)
def test_gpu_kernels_equal_float_products(m, n, k):
    cupy = cuda.cupy
    rng = numpy.random.RandomState(k + 3)
    xs, ws = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    x, w = (cupy.asarray(packed_format.pack_signs(a)) for a in (xs, ws))
    pixels = random_pixels(rng, m, k)
    t = rng.randint(-k, k + 1, n).astype(numpy.int32)
    flip = rng.rand(n) < 0.5
    numpy.testing.assert_array_equal(cupy.asnumpy(gpu.xnor_dot(x, w, k)),
                                     xs.dot(ws.T))
    numpy.testing.assert_array_equal(
        cupy.asnumpy(gpu.sign_layer(x, w, k, cupy.asarray(t),
                                    cupy.asarray(flip))),
        reference_fires(xs.dot(ws.T), t, flip))
    t *= 60
    numpy.testing.assert_array_equal(
        cupy.asnumpy(gpu.first_layer(cupy.asarray(pixels), w,
                                     cupy.asarray(t), cupy.asarray(flip))),
        reference_fires(pixels.astype(numpy.float64).dot(ws.T), t, flip))


@pytest.mark.gpu
def test_xnor_dot_extremes():
    cupy = cuda.cupy
    k = 130
    ones = cupy.asarray(packed_format.pack_signs(numpy.ones((1, k))))
    minus = cupy.asarray(packed_format.pack_signs(-numpy.ones((1, k))))
    assert gpu.xnor_dot(ones, ones, k).tolist() == [[k]]
    assert gpu.xnor_dot(ones, minus, k).tolist() == [[-k]]
