"""position_lanes.py: a convolution of stride 1 on bits, its output
positions across the lanes, counted by nibble lookups in tables of the
filters, against a float convolution of the +-1 values padded with zeros:
channels that fill a byte and that do not, more than 64, filters past
whole tiles and words, pads 0 to 2, rows of every length around a tile's
32 lanes, every border class, flips, a 2 x 2 max-pooling (whole windows of
odd sizes), and counts past a byte's 255 widened in time."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import borders  # noqa: E402
from quantized_net.packed.kernels import convolutions  # noqa: E402
from quantized_net.packed.kernels import cpu_features  # noqa: E402
from quantized_net.packed.kernels import position_lanes  # noqa: E402
from helpers import (  # noqa: E402
    convolution_fires, float_convolution, random_signs)

pytestmark = pytest.mark.skipif(
    'avx2' not in cpu_features.runnable_forms(),
    reason='the tiles are AVX2 code; this CPU has no AVX2')

# (channels, height, width, filters, ksize, pad, pool)
CASES = [(32, 9, 9, 32, 3, 1, 2), (32, 7, 7, 64, 3, 1, 0),
         (64, 6, 6, 33, 3, 1, 2), (1, 9, 9, 5, 3, 1, 0),
         (3, 8, 8, 70, 5, 2, 0), (70, 5, 5, 8, 2, 1, 2),
         (16, 7, 7, 130, 3, 0, 0), (48, 6, 6, 32, 3, 2, 2),
         (128, 4, 4, 40, 1, 0, 0), (20, 11, 11, 7, 4, 2, 2),
         (256, 5, 5, 40, 3, 1, 2), (200, 4, 4, 33, 3, 1, 0),
         (12, 3, 31, 9, 3, 1, 0), (8, 2, 32, 16, 3, 1, 0),
         (5, 4, 33, 3, 3, 1, 2), (9, 1, 70, 31, 1, 0, 0)]


@pytest.mark.parametrize('channels,height,width,n,ksize,pad,pool', CASES)
def test_the_convolution_equals_the_float_one(channels, height, width, n,
                                              ksize, pad, pool):
    rng = numpy.random.RandomState(channels * height * width + n)
    images = 3
    signs = random_signs(rng, (images, channels, height, width))
    filters = random_signs(rng, (n, channels, ksize, ksize))
    conv = packed_format.Convolution((channels, height, width), n, ksize,
                                     1, pad, pool)
    d = float_convolution(signs, filters, conv)
    k = conv.taps()
    t = rng.randint(-k // 4, k // 4 + 1, n).astype(numpy.int32)
    t[0] = -k - 1  # always fires
    if n > 1:
        t[1] = k + 1  # never
    flip = rng.rand(n) < 0.5
    packed_filters = packed_format.pack_signs(filters.reshape(n, -1))
    classes, inside = borders.tap_classes(conv)
    limits = borders.class_limits(packed_filters, t, conv, inside)
    h = packed_format.pack_signs(signs.transpose(0, 2, 3, 1).reshape(
        -1, channels)).reshape(images, height, width, -1)
    out = position_lanes.convolution(
        position_lanes.byte_planes(h, conv), conv,
        position_lanes.filter_tables(packed_filters, conv),
        position_lanes.tap_offsets(conv),
        position_lanes.position_limits(limits, classes, conv),
        convolutions.flip_words(flip), pool)
    expected = convolution_fires(d, t, flip, conv)
    numpy.testing.assert_array_equal(
        out.reshape(-1, out.shape[-1]), expected)
    assert out.shape[:3] == (images,) + conv.out_shape()[1:]


def test_counts_past_a_byte_are_exact_at_every_limit():
    # 256 channels, 3 x 3: 288 bytes a position, counts up to 2304; the
    # filters all +1 and the inputs all -1 (0 bits) count every bit.
    conv = packed_format.Convolution((256, 3, 3), 3, 3, 1, 0, 0)
    filters = numpy.ones((3, 256, 3, 3), numpy.float32)
    packed_filters = packed_format.pack_signs(filters.reshape(3, -1))
    h = numpy.zeros((1, 3, 3, 4), numpy.uint64)
    for limit, fires in ((2303, False), (2304, True)):
        limits = numpy.full((1, 3), limit, numpy.int64)
        out = position_lanes.convolution(
            position_lanes.byte_planes(h, conv), conv,
            position_lanes.filter_tables(packed_filters, conv),
            position_lanes.tap_offsets(conv),
            position_lanes.position_limits(limits, numpy.zeros(
                1, numpy.int32), conv),
            numpy.zeros(1, numpy.uint64), 0)
        assert out.tolist() == [[[[0b111 if fires else 0]]]]


def test_no_images_give_no_positions():
    conv = packed_format.Convolution((32, 5, 5), 32, 3, 1, 1, 2)
    h = numpy.zeros((0, 5, 5, 1), numpy.uint64)
    packed_filters = numpy.zeros((32, 5), numpy.uint64)
    classes, _ = borders.tap_classes(conv)
    out = position_lanes.convolution(
        position_lanes.byte_planes(h, conv), conv,
        position_lanes.filter_tables(packed_filters, conv),
        position_lanes.tap_offsets(conv),
        position_lanes.position_limits(
            numpy.zeros((9, 32), numpy.int64), classes, conv),
        numpy.zeros(1, numpy.uint64), 2)
    assert out.shape == (0, 2, 2, 1)


def test_a_table_counts_the_bits_of_its_nibble_xor_each_index():
    # One filter, 8 channels, 1 x 1: channels 0 and 5 +1, the rest -1.
    conv = packed_format.Convolution((8, 1, 1), 1, 1, 1, 0, 0)
    w = -numpy.ones((1, 8), numpy.float32)
    w[0, [0, 5]] = 1
    tables = position_lanes.filter_tables(packed_format.pack_signs(w), conv)
    assert tables.shape == (1, 1, 2, position_lanes.TILE_FILTERS, 16)
    low, high = tables[0, 0, :, 0]
    assert low.tolist() == [bin(i ^ 0b0001).count('1') for i in range(16)]
    assert high.tolist() == [bin(i ^ 0b0010).count('1') for i in range(16)]
    assert not tables[0, 0, :, 1:].any() or (
        tables[0, 0, :, 1:] == [bin(i).count('1') for i in range(16)]).all()


def test_runs_only_where_its_counts_and_stride_allow():
    conv = packed_format.Convolution
    assert position_lanes.runs(conv((32, 8, 8), 32, 3, 1, 1, 0), 'avx2')
    assert not position_lanes.runs(conv((32, 8, 8), 32, 3, 2, 1, 0), 'avx2')
    assert not position_lanes.runs(conv((32, 8, 8), 32, 3, 1, 1, 0),
                                   'avx512')
    assert not position_lanes.runs(conv((4096, 8, 8), 32, 3, 1, 1, 0),
                                   'avx2')
