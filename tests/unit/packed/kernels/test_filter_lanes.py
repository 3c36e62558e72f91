"""filter_lanes.py: a convolution on bits, its filters across the lanes,
read in place from its input's planes, against a float convolution of the
+-1 values padded with zeros: channels that fill a word evenly and that do
not, wider than a word, strides, pads, filters past whole tiles and words,
rows of 1 to 36 words, positions past whole tiles, every border class,
flips, and a 2 x 2 max-pooling fused (whole windows of odd sizes)."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import borders  # noqa: E402
from quantized_net.packed.kernels import filter_lanes  # noqa: E402
from quantized_net.packed.kernels import tap_planes  # noqa: E402
from helpers import bit_convolution_case  # noqa: E402


# (channels, size, filters, ksize, stride, pad, pool)
CASES = [(32, 9, 32, 3, 1, 1, 2), (32, 7, 64, 3, 1, 1, 0),
         (64, 6, 33, 3, 1, 1, 2), (1, 9, 5, 3, 2, 1, 0),
         (3, 8, 70, 5, 2, 2, 0), (70, 5, 8, 2, 1, 1, 2),
         (16, 7, 130, 3, 1, 0, 0), (48, 6, 32, 3, 1, 2, 2),
         (128, 4, 40, 1, 1, 0, 0), (20, 11, 7, 4, 3, 2, 2),
         (256, 5, 40, 3, 1, 1, 2), (200, 4, 33, 3, 1, 1, 0),
         (512, 3, 9, 3, 1, 1, 0)]


@pytest.mark.parametrize('channels,size,n,ksize,stride,pad,pool', CASES)
def test_the_convolution_equals_the_float_one(channels, size, n, ksize,
                                              stride, pad, pool):
    images = 3
    conv = packed_format.Convolution((channels, size, size), n, ksize,
                                     stride, pad, pool)
    case = bit_convolution_case(conv, images, channels * size + n)
    out = filter_lanes.convolution(
        tap_planes.planes(case.x, conv), conv,
        filter_lanes.transposed(tap_planes.filter_words(
            case.filters, conv), n),
        tap_planes.word_offsets(conv),
        filter_lanes.lane_limits(case.limits), case.classes,
        case.flip_words, pool)
    numpy.testing.assert_array_equal(
        out.reshape(-1, out.shape[-1]), case.expected)
    assert out.shape[:3] == (images,) + conv.out_shape()[1:]


def test_no_images_give_no_positions():
    conv = packed_format.Convolution((32, 5, 5), 32, 3, 1, 1, 2)
    h = numpy.zeros((0, 5, 5, 1), numpy.uint64)
    out = filter_lanes.convolution(
        tap_planes.planes(h, conv), conv,
        numpy.zeros((6, 32), numpy.uint64), tap_planes.word_offsets(conv),
        numpy.zeros((9, 32), numpy.int64), borders.tap_classes(conv)[0],
        numpy.zeros(1, numpy.uint64), 2)
    assert out.shape == (0, 2, 2, 1)


def test_the_weights_are_word_major_in_whole_tiles():
    rows = numpy.arange(2 * 3, dtype=numpy.uint64).reshape(3, 2)
    laid = filter_lanes.transposed(rows, 3)
    assert laid.shape == (2, filter_lanes.TILE_FILTERS)
    assert laid[:, :3].tolist() == [[0, 2, 4], [1, 3, 5]]
    assert not laid[:, 3:].any()


def test_limits_past_the_last_filter_never_fire():
    laid = filter_lanes.lane_limits(numpy.array([[3, -5], [0, 7]]))
    assert laid.shape == (2, filter_lanes.TILE_FILTERS)
    assert laid.dtype == numpy.int64
    assert laid[:, :2].tolist() == [[3, -5], [0, 7]]
    assert (laid[:, 2:] == -1).all()


def test_every_form_but_the_scalar_reference_runs_across_the_lanes():
    assert filter_lanes.runs('avx512') and filter_lanes.runs('avx2')
    assert not filter_lanes.runs('scalar')
