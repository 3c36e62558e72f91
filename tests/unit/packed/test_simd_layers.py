"""simd_layers.py and the kernels of simd_layers.py: every form against
the float +-1 products, on every width class of the scalar kernels' tests.

The avx512 form's hidden layers are LLVM's generic vector popcount, which
compiles on any CPU (to ``vpopcntq`` where AVX-512 VPOPCNTDQ is, to other
instructions elsewhere), so they are tested everywhere; the avx2 form, and
every form's first layer (``vpmaddubsw``), need AVX2.
"""
import numpy
import pytest

from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import simd_layers
from quantized_net.packed.kernels import xnor_popcount
from helpers import random_pixels, random_signs, reference_fires

pytest.importorskip('numba')


def form_param(form):
    runs = form == 'avx512' or form in simd_layers.runnable_forms()
    return pytest.param(form, marks=pytest.mark.skipif(
        not runs, reason='this CPU has no {}'.format(form.upper())))


FORMS = [form_param(form) for form in simd_layers.FORMS]
needs_avx2 = pytest.mark.skipif('avx2' not in simd_layers.runnable_forms(),
                                reason='the first layer needs AVX2')
# Widths 1, 63, 64, 65, 130, 200, 784, 4096, 8257 (past the avx2 chunk of
# 31 vectors), images 0 (no rows) to 33, units past whole tiles and words.
SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (17, 130, 130),
          (4, 129, 200), (2, 64, 784), (3, 9, 8257), (2, 130, 4096),
          (0, 5, 10), (3, 0, 64)]


# One image reads the avx2 weights as packed bits (PACKED_BATCH).
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('m,n,k', SHAPES + [(1, 70, 65), (1, 130, 784),
                                            (1, 9, 8257), (1, 64, 2048)])
def test_hidden_layer_and_dot_equal_float_products(form, m, n, k):
    rng = numpy.random.RandomState(k + 3)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    thresholds = rng.randint(-k // 4, k // 4 + 1, n).astype(numpy.int32)
    thresholds[:2] = [-k - 1, k + 1][:n]  # always, never
    flip = rng.rand(n) < 0.5
    packed_x = simd_layers.layout(packed_format.pack_signs(x), form)
    packed_w = simd_layers.weights(packed_format.pack_signs(w), n, form)
    out = simd_layers.sign_layer(
        packed_x, packed_w, xnor_popcount.pop_limits(thresholds, k), flip,
        form)
    assert out.shape == (m, simd_layers.layout_words(n, form))
    numpy.testing.assert_array_equal(simd_layers.unlayout(out, n, form),
                                     reference_fires(x.dot(w.T), thresholds,
                                                     flip))
    # The padding of the outputs is 0: the next layer adds nothing of it.
    numpy.testing.assert_array_equal(out, simd_layers.layout(
        simd_layers.unlayout(out, n, form), form))
    d = simd_layers.dot(packed_x, packed_w, k, n, form)
    assert d.dtype == numpy.int32
    numpy.testing.assert_array_equal(d, x.dot(w.T))


@needs_avx2
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('m,n,k', SHAPES + [(300, 65, 784)])  # 2 batches
def test_first_layer_equals_thresholded_pixel_product(form, m, n, k):
    rng = numpy.random.RandomState(k + 4)
    pixels, w = random_pixels(rng, m, k), random_signs(rng, (n, k))
    thresholds = rng.randint(-60 * k, 60 * k, n).astype(numpy.int32)
    flip = rng.rand(n) < 0.5
    out = simd_layers.first_layer(
        pixels, simd_layers.pixel_masks(packed_format.pack_signs(w), k),
        simd_layers.pixel_limits(thresholds), flip, form)
    d = pixels.astype(numpy.float64).dot(w.T)
    numpy.testing.assert_array_equal(simd_layers.unlayout(out, n, form),
                                     reference_fires(d, thresholds, flip))


@needs_avx2
@pytest.mark.parametrize('form', FORMS)
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
    thresholds = d[rng.randint(0, len(d), n), numpy.arange(n)].astype(
        numpy.int32)
    flip = rng.rand(n) < 0.5
    out = simd_layers.first_layer(
        pixels, simd_layers.pixel_masks(packed_format.pack_signs(w), k),
        simd_layers.pixel_limits(thresholds), flip, form)
    numpy.testing.assert_array_equal(simd_layers.unlayout(out, n, form),
                                     reference_fires(d, thresholds, flip))


def test_first_layer_refuses_other_pixels_and_masks():
    w = packed_format.pack_signs(numpy.ones((3, 10), numpy.float32))
    masks = simd_layers.pixel_masks(w, 10)
    limits = simd_layers.pixel_limits(numpy.zeros(3, numpy.int32))
    flip = numpy.zeros(3, bool)
    with pytest.raises(TypeError, match='uint8 pixels, not float32'):
        simd_layers.first_layer(numpy.zeros((2, 10), numpy.float32), masks,
                                limits, flip, 'avx2')
    with pytest.raises(ValueError, match='masks of 5 pixel pairs for 12'):
        simd_layers.first_layer(numpy.zeros((2, 12), numpy.uint8), masks,
                                limits, flip, 'avx2')


def test_pixel_limits_negate_thresholds_and_clamp_the_lowest():
    limits = simd_layers.pixel_limits(numpy.array(
        [5, -3, 0, -2 ** 31 + 1, -2 ** 31, 2 ** 31 - 1], numpy.int32))
    assert limits.dtype == numpy.int32
    assert limits.tolist() == [-5, 3, 0, 2 ** 31 - 1, 2 ** 31 - 1,
                               -2 ** 31 + 1]


@needs_avx2
@pytest.mark.parametrize('form', FORMS)
def test_first_layer_sums_beyond_sixteen_bits(form):
    # 784 white pixels: 784 * 255 overflows the 16-bit counters unless
    # they are flushed before a chunk of 98 pairs could take them past
    # 65535.
    k, n = 784, 3
    pixels = numpy.full((2, k), 255, numpy.uint8)
    w = numpy.ones((n, k), numpy.float32)
    w[1, :400] = -1
    exact = pixels.astype(numpy.int64).dot(w.T.astype(numpy.int64))[0]
    masks = simd_layers.pixel_masks(packed_format.pack_signs(w), k)
    for delta, fires in ((0, True), (1, False)):
        out = simd_layers.first_layer(
            pixels, masks, simd_layers.pixel_limits(
                (exact + delta).astype(numpy.int32)),
            numpy.zeros(n, bool), form)
        assert simd_layers.unlayout(out, n, form).tolist() == \
            [[7 if fires else 0]] * 2


def test_avx2_layout_is_nibble_planes():
    row = numpy.zeros((1, 5), numpy.uint64)
    row[0, 0] = 0xA5
    row[0, 4] = 0x3C << 8
    planes = simd_layers.layout(row, 'avx2').view(numpy.uint8)
    assert planes.shape == (1, 128)  # 320 bits: two steps of 256
    # Step 0: the low four bits of its 32 bytes, then the high four.
    assert (planes[0, 0], planes[0, 32]) == (0x5, 0xA)
    # Word 4 is the first of step 1; its byte 1 holds 0x3C.
    assert (planes[0, 64 + 1], planes[0, 96 + 1]) == (0xC, 0x3)
    assert numpy.count_nonzero(planes) == 4
    numpy.testing.assert_array_equal(
        simd_layers.unlayout(simd_layers.layout(row, 'avx2'), 320, 'avx2'),
        row)


def test_forms_by_cpu_features():
    assert simd_layers.runnable_forms(set()) == []
    assert simd_layers.runnable_forms({'avx2', 'popcnt'}) == ['avx2']
    assert simd_layers.runnable_forms({'avx2', 'avx512f'}) == ['avx2']
    assert simd_layers.runnable_forms(
        {'avx2', 'avx512f', 'avx512vpopcntdq'}) == ['avx512', 'avx2']


@pytest.mark.parametrize('shape,dtype', [((3, 64), numpy.uint64),
                                         ((2, 5, 256), numpy.uint8),
                                         ((0, 8), numpy.uint64)])
def test_aligned_zeros_start_on_a_cache_line(shape, dtype):
    for _ in range(8):  # allocations land at different offsets
        a = simd_layers.aligned_zeros(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.size:  # an empty slice keeps its base's address
            assert a.__array_interface__['data'][0] % 64 == 0
        assert not a.any()


@needs_avx2
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('sizes', [(200, 70, 10), (784, 130, 64, 9),
                                   (65, 64, 200, 130, 3)])
@pytest.mark.parametrize('m', [0, 1, 2, 40])
def test_network_equals_its_layers_chained(form, sizes, m):
    # One compiled call for the avx2 form with hidden layers, the layers
    # one by one otherwise: the same dot products as the float chain.
    rng = numpy.random.RandomState(m + len(sizes))
    pixels = random_pixels(rng, m, sizes[0])
    signs = [random_signs(rng, (n, k)) for k, n in zip(sizes, sizes[1:])]
    thresholds = [rng.randint(-30 * sizes[0], 30 * sizes[0], sizes[1])] + [
        rng.randint(-k // 4, k // 4 + 1, n)
        for k, n in zip(sizes[1:-2], sizes[2:-1])]
    flips = [rng.rand(n) < 0.5 for n in sizes[1:-1]]
    h = pixels.astype(numpy.float64)
    for w, t, f in zip(signs, thresholds, flips):
        h = numpy.where((h.dot(w.T) >= t) != f, 1., -1.)
    expected = h.dot(signs[-1].T).astype(numpy.int32)
    packed = [packed_format.pack_signs(w) for w in signs]
    limits = [simd_layers.pixel_limits(thresholds[0].astype(numpy.int32))] + [
        xnor_popcount.pop_limits(t.astype(numpy.int32), k)
        for t, k in zip(thresholds[1:], sizes[1:])]
    dots = simd_layers.network(
        pixels, simd_layers.pixel_masks(packed[0], sizes[0]), limits, flips,
        [simd_layers.weights(w, n, form)
         for w, n in zip(packed[1:], sizes[2:])],
        sizes[-2], sizes[-1], form)
    assert dots.dtype == numpy.int32
    numpy.testing.assert_array_equal(dots, expected)
