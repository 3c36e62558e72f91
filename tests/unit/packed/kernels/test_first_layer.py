"""first_layer.py: every form's first layer against the thresholded
products of the pixels with the float +-1 weights."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import first_layer  # noqa: E402
from quantized_net.packed.kernels import layouts, thresholds  # noqa: E402
from helpers import random_pixels, random_signs  # noqa: E402
from helpers import reference_fires  # noqa: E402

# Inputs 1, 63 (odd: a last pair of one pixel), 64, 65, 130, 200, 784,
# 4096, 8257; images 0 (no rows) to 33 and 300 (two lists of pairs);
# units past whole groups and words.
SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (17, 130, 130),
          (4, 129, 200), (2, 64, 784), (3, 9, 8257), (2, 130, 4096),
          (0, 5, 10), (3, 0, 64), (300, 65, 784)]


def layer(pixels, w, t, flip, form):
    return first_layer.first_layer(
        pixels, layouts.pixel_masks(packed_format.pack_signs(w),
                                    pixels.shape[1]),
        thresholds.pixel_limits(t.astype(numpy.int32)), flip, form)


@pytest.mark.parametrize('m,n,k', SHAPES)
def test_first_layer_equals_thresholded_pixel_product(form, m, n, k):
    rng = numpy.random.RandomState(k + 4)
    pixels, w = random_pixels(rng, m, k), random_signs(rng, (n, k))
    t = rng.randint(-60 * k, 60 * k, n)
    flip = rng.rand(n) < 0.5
    d = pixels.astype(numpy.float64).dot(w.T)
    numpy.testing.assert_array_equal(
        layer(pixels, w, t, flip, form),
        layouts.layout(reference_fires(d, t, flip), form))


def test_first_layer_on_sparse_images(form):
    # MNIST-like sparsity: nonzero pixels on either side of the edges of a
    # 64-pair word (pairs 63, 64) and of a chunk (pairs 97, 98), at the
    # first and last pixel, one chunk alone, none, and every pixel.
    k, n = 784, 70
    rng = numpy.random.RandomState(9)
    pixels = numpy.zeros((12, k), numpy.uint8)
    for row, pixel in enumerate([0, 1, 126, 127, 128, 129, 194, 195, 196,
                                 783]):
        pixels[row, pixel] = rng.randint(1, 256)
    pixels[10, 2 * 98:2 * 196] = rng.randint(0, 256, 2 * 98)
    pixels = numpy.concatenate([pixels, numpy.full((1, k), 255, numpy.uint8)])
    w = random_signs(rng, (n, k))
    d = pixels.astype(numpy.int64).dot(w.T.astype(numpy.int64))
    # Thresholds at some image's exact sum: ties decide some units.
    t = d[rng.randint(0, len(d), n), numpy.arange(n)]
    flip = rng.rand(n) < 0.5
    numpy.testing.assert_array_equal(
        layer(pixels, w, t, flip, form),
        layouts.layout(reference_fires(d, t, flip), form))


def test_first_layer_sums_beyond_sixteen_bits(form):
    # 784 white pixels: 784 * 255 overflows the 16-bit counters unless
    # they are flushed before a chunk of 98 pairs could take them past
    # 65535.
    k, n = 784, 3
    pixels = numpy.full((2, k), 255, numpy.uint8)
    w = numpy.ones((n, k), numpy.float32)
    w[1, :400] = -1
    exact = pixels.astype(numpy.int64).dot(w.T.astype(numpy.int64))[0]
    for delta, fires in ((0, True), (1, False)):
        out = layer(pixels, w, exact + delta, numpy.zeros(n, bool), form)
        word = numpy.uint64(7 if fires else 0)
        numpy.testing.assert_array_equal(out, layouts.layout(
            numpy.full((2, 1), word), form))


def test_first_layer_refuses_other_pixels_and_masks():
    w = packed_format.pack_signs(numpy.ones((3, 10), numpy.float32))
    masks = layouts.pixel_masks(w, 10)
    limits = thresholds.pixel_limits(numpy.zeros(3, numpy.int32))
    flip = numpy.zeros(3, bool)
    with pytest.raises(TypeError, match='uint8 pixels, not float32'):
        first_layer.first_layer(numpy.zeros((2, 10), numpy.float32), masks,
                                limits, flip, 'scalar')
    with pytest.raises(ValueError, match='masks of 5 pixel pairs for 12'):
        first_layer.first_layer(numpy.zeros((2, 12), numpy.uint8), masks,
                                limits, flip, 'scalar')
