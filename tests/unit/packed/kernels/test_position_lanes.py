"""position_lanes.py: convolutions of stride 1, their output positions
across the lanes, against float convolutions padded with zeros. On bits,
counted by nibble lookups in tables of the filters: channels that fill a
byte and that do not, more than 64, filters past whole tiles and words,
pads 0 to 2, rows of every length around a vector's 32 lanes and a tile's
64, every border class, flips, a 2 x 2 max-pooling (whole windows of odd
sizes), and counts past a byte's 255 widened in time. On pixels, summed
in pairs of taps: both pixel maps, channels, odd and even filter sizes,
the widest sums that fit 16 bits, bounds that always and never pass."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import borders  # noqa: E402
from quantized_net.packed.kernels import cpu_features  # noqa: E402
from quantized_net.packed.kernels import position_lanes  # noqa: E402
from helpers import (  # noqa: E402
    bit_convolution_case, pixel_convolution_case)

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
    images = 3
    conv = packed_format.Convolution((channels, height, width), n, ksize,
                                     1, pad, pool)
    case = bit_convolution_case(conv, images,
                                channels * height * width + n)
    out = position_lanes.convolution(
        position_lanes.byte_planes(case.x, conv), conv,
        position_lanes.filter_tables(case.filters, conv),
        position_lanes.tap_offsets(conv),
        position_lanes.position_limits(case.limits, case.classes, conv),
        case.flip_words, pool)
    numpy.testing.assert_array_equal(
        out.reshape(-1, out.shape[-1]), case.expected)
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


@pytest.mark.parametrize('threshold', [-2 ** 31, -70001, -32769, 32768,
                                       70001, 2 ** 31 - 1])
def test_limits_past_int16_saturate_to_always_or_never(threshold):
    # Thresholds of any int32 (the file allows them): limits past int16
    # pass every count, or none.
    conv = packed_format.Convolution((32, 6, 6), 33, 3, 1, 1, 0)
    case = bit_convolution_case(conv, 2, 5)
    thresholds = numpy.full(33, threshold, numpy.int64)
    classes, inside = borders.tap_classes(conv)
    limits = borders.class_limits(case.filters, thresholds, conv, inside)
    out = position_lanes.convolution(
        position_lanes.byte_planes(case.x, conv), conv,
        position_lanes.filter_tables(case.filters, conv),
        position_lanes.tap_offsets(conv),
        position_lanes.position_limits(limits, classes, conv),
        numpy.zeros(1, numpy.uint64), 0)
    fires = numpy.uint64(2 ** 33 - 1) if threshold < 0 else 0
    assert (out == fires).all()


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
    # Past the last filter, weights of 0 bits (their limits never pass).
    assert (tables[0, 0, :, 1:] ==
            [bin(i).count('1') for i in range(16)]).all()


def test_runs_only_where_its_counts_stride_and_positions_allow():
    conv = packed_format.Convolution
    assert position_lanes.runs(conv((32, 10, 10), 32, 3, 1, 1, 0), 'avx2')
    assert not position_lanes.runs(conv((32, 10, 10), 32, 3, 2, 1, 0),
                                   'avx2')
    assert not position_lanes.runs(conv((32, 10, 10), 32, 3, 1, 1, 0),
                                   'avx512')
    # For one image, two tiles of positions at least: 10 rows of 12 padded
    # columns are 128 counted; 8 rows of 10, 96; for two images, 192.
    assert position_lanes.MIN_POSITIONS == 128
    small = conv((32, 8, 8), 32, 3, 1, 1, 0)
    assert position_lanes.runs(small, 'avx2')
    assert not position_lanes.runs(small, 'avx2', images=1)
    assert position_lanes.runs(small, 'avx2', images=2)
    assert position_lanes.runs(conv((32, 10, 10), 32, 3, 1, 1, 0), 'avx2',
                               images=1)
    # Counts within int16: 3 x 3 taps of 455 bytes of channels, not 456.
    assert position_lanes.runs(conv((3640, 10, 10), 32, 3, 1, 1, 0),
                               'avx2')
    assert not position_lanes.runs(conv((3641, 10, 10), 32, 3, 1, 1, 0),
                                   'avx2')
    assert position_lanes.runs_pixels(conv((2, 8, 8), 8, 8, 1, 3, 0),
                                      'avx2')
    assert not position_lanes.runs_pixels(conv((3, 8, 8), 8, 7, 1, 3, 0),
                                          'avx2')
    assert not position_lanes.runs_pixels(conv((1, 8, 8), 8, 3, 2, 1, 0),
                                          'avx2')
    assert not position_lanes.runs_pixels(conv((1, 8, 8), 8, 3, 1, 1, 0),
                                          'avx512')


# (channels, height, width, filters, ksize, pad, pool); the fifth: 2 x 8 x
# 8 taps = MAX_TAPS, sums up to 255 * 128; unpadded rows of odd filters,
# whose last tap of a row stands alone.
PIXEL_CASES = [(1, 12, 12, 32, 3, 1, 0), (1, 11, 11, 5, 3, 1, 2),
               (3, 9, 40, 70, 5, 2, 0), (2, 8, 8, 33, 2, 0, 2),
               (2, 9, 9, 40, 8, 3, 0), (1, 28, 28, 32, 3, 1, 0),
               (1, 9, 9, 5, 3, 0, 0), (2, 7, 33, 40, 1, 0, 0),
               (1, 10, 10, 8, 5, 0, 2)]


@pytest.mark.parametrize('value', sorted(packed_format.PIXEL_VALUES))
@pytest.mark.parametrize('channels,height,width,n,ksize,pad,pool',
                         PIXEL_CASES)
def test_the_first_convolution_equals_the_float_one(
        channels, height, width, n, ksize, pad, pool, value):
    conv = packed_format.Convolution((channels, height, width), n, ksize,
                                     1, pad, pool)
    assert position_lanes.runs_pixels(conv, 'avx2')
    case = pixel_convolution_case(conv, 3, channels * height * width + n,
                                  value)
    out = position_lanes.convolution(
        position_lanes.pixel_planes(case.x, conv), conv,
        position_lanes.pixel_signs(case.filters, conv),
        position_lanes.pair_offsets(conv),
        position_lanes.pixel_limits(case.limits, case.classes, conv),
        case.flip_words, pool, position_lanes.PIXELS)
    numpy.testing.assert_array_equal(out.reshape(-1, out.shape[-1]),
                                     case.expected)
    assert out.shape[:3] == (3,) + conv.out_shape()[1:]


def test_pairs_of_taps_are_offsets_and_signs_in_the_files_order():
    # 2 channels of 4 x 5 padded by 1: rows of 7, planes of whole vectors.
    conv = packed_format.Convolution((2, 4, 5), 3, 3, 1, 1, 0)
    plane = position_lanes.plane_length(conv)
    assert plane % position_lanes.LANES == 0
    # The last tile's last position reads its last pair there.
    assert plane > position_lanes.flat_positions(conv) - 1 + 2 * 7 + 2
    # Two bytes a position: its pixel, then its right neighbour's.
    assert position_lanes.pair_offsets(conv).tolist() == [
        2 * (c * plane + ky * 7 + kx) for c in range(2) for ky in range(3)
        for kx in (0, 2)]
    pixels = numpy.arange(1, 41, dtype=numpy.uint8)[None]
    planes = position_lanes.pixel_planes(pixels, conv)
    assert planes.shape == (1, 2, plane, 2)
    assert planes[0, 0, :14].tolist() == [[0, 0]] * 7 + [
        [0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 0]]
    assert planes[0, 1, 29:34].tolist() == [
        [36, 37], [37, 38], [38, 39], [39, 40], [40, 0]]
    assert not planes[0, :, 42:].any()
    w = -numpy.ones((3, 2 * 9), numpy.float32)
    w[1, [0, 2, 4]] = 1  # filter 1: channel 0, taps (0, 0), (0, 2), (1, 1)
    signs = position_lanes.pixel_signs(packed_format.pack_signs(w), conv)
    assert signs.shape == (1, 12, position_lanes.TILE_FILTERS, 2)
    assert signs[0, :4, 1].tolist() == [[1, -1], [1, 0], [-1, 1], [-1, 0]]
    assert signs[0, :, 0].tolist() == [[-1, -1], [-1, 0]] * 6
    assert not signs[0, :, 3:].any()  # past the last filter
