"""network.py: the compiled network gives the dot products of the float
chain of its layers, with no hidden layer after the first or several, on
no image, one and a batch."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import layouts, network  # noqa: E402
from quantized_net.packed.kernels import thresholds  # noqa: E402
from helpers import random_pixels, random_signs  # noqa: E402


@pytest.mark.parametrize('sizes', [(200, 70, 10), (784, 130, 64, 9),
                                   (65, 64, 200, 130, 3)])
@pytest.mark.parametrize('m', [0, 1, 2, 40])
def test_network_equals_its_layers_chained(form, sizes, m):
    rng = numpy.random.RandomState(m + len(sizes))
    pixels = random_pixels(rng, m, sizes[0])
    signs = [random_signs(rng, (n, k)) for k, n in zip(sizes, sizes[1:])]
    t = [rng.randint(-30 * sizes[0], 30 * sizes[0], sizes[1])] + [
        rng.randint(-k // 4, k // 4 + 1, n)
        for k, n in zip(sizes[1:-2], sizes[2:-1])]
    t = [a.astype(numpy.int32) for a in t]
    flips = [rng.rand(n) < 0.5 for n in sizes[1:-1]]
    h = pixels.astype(numpy.float64)
    for w, threshold, flip in zip(signs, t, flips):
        h = numpy.where((h.dot(w.T) >= threshold) != flip, 1., -1.)
    expected = h.dot(signs[-1].T).astype(numpy.int32)
    packed = [packed_format.pack_signs(w) for w in signs]
    dots = network.dots(
        pixels, layouts.pixel_masks(packed[0], sizes[0]),
        thresholds.pixel_limits(t[0]), flips[0],
        [layouts.weights(w, n, form) for w, n in zip(packed[1:], sizes[2:])],
        [thresholds.pop_limits(a, k) for a, k in zip(t[1:], sizes[1:])],
        flips[1:], sizes[-2], sizes[-1], form)
    assert dots.dtype == numpy.int32
    numpy.testing.assert_array_equal(dots, expected)
