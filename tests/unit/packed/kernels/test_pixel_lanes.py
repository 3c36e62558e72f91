"""pixel_lanes.py: the first convolution across 16-bit lanes and in runs of
four taps, against a float convolution of the pixels' values padded with
zeros, for both pixel maps, channels, strides, pads, filters past a tile, a
fused 2 x 2 pooling, the widest sums that fit 16 bits; bounds past what the
pixels can sum, the taps' offsets and the runs' signs."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import cpu_features  # noqa: E402
from quantized_net.packed.kernels import filter_lanes  # noqa: E402
from quantized_net.packed.kernels import pixel_lanes  # noqa: E402
from helpers import pixel_convolution_case  # noqa: E402

# (channels, size, filters, ksize, stride, pad, pool); the last: 2 x 8 x 8
# taps = MAX_TAPS, sums up to 255 * 128.
CASES = [(1, 12, 32, 3, 1, 1, 0), (1, 11, 5, 3, 1, 1, 2),
         (3, 9, 70, 5, 2, 2, 0), (2, 8, 33, 2, 1, 0, 2),
         (2, 9, 40, 8, 1, 3, 0)]


def vnni():
    return 'avx512vnni' in cpu_features.host_features()


# Each form's tile: the avx2 form's 16-bit sums, the avx512 form's runs
# of four taps (AVX-512 VNNI, where this CPU has it).
FORMS = ['avx2', pytest.param('avx512', marks=pytest.mark.skipif(
    not vnni(), reason='this CPU has no AVX-512 VNNI'))]


@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('value', sorted(packed_format.PIXEL_VALUES))
@pytest.mark.parametrize('channels,size,n,ksize,stride,pad,pool', CASES)
def test_the_first_convolution_equals_the_float_one(
        channels, size, n, ksize, stride, pad, pool, value, form):
    conv = packed_format.Convolution((channels, size, size), n, ksize,
                                     stride, pad, pool)
    case = pixel_convolution_case(conv, 3, channels * size + n, value)
    out = filter_lanes.convolution(
        pixel_lanes.padded(case.x, conv), conv,
        pixel_lanes.filter_signs(case.filters, conv, form),
        pixel_lanes.tap_offsets(conv, form),
        pixel_lanes.bounds(case.limits, n), case.classes, case.flip_words,
        pool, pixel_lanes.tile_kind(form))
    numpy.testing.assert_array_equal(out.reshape(-1, out.shape[-1]),
                                     case.expected)


def test_bounds_past_the_pixels_reach_saturate_and_spare_lanes_never_fire():
    limits = numpy.array([[5, -7, 40000, -40000, -2 ** 31]], numpy.int32)
    bounds = pixel_lanes.bounds(limits, 4)
    assert bounds.dtype == numpy.int16
    assert bounds.shape == (1, pixel_lanes.TILE_FILTERS)
    # S >= -limit: -5, 7; always (S >= -40000 for any S); never.
    assert bounds[0, :4].tolist() == [-5, 7, -32768, 32767]
    assert (bounds[0, 4:] == 32767).all()


def test_the_taps_are_offsets_in_the_padded_image_in_the_files_order():
    conv = packed_format.Convolution((2, 4, 5), 8, 2, 1, 1, 0)
    # Padded: 6 rows of 7 + 3 pixels a channel.
    assert pixel_lanes.tap_offsets(conv, 'avx2').tolist() == [
        0, 1, 10, 11, 60, 61, 70, 71]
    # Runs of four taps along each filter row.
    assert pixel_lanes.tap_offsets(conv, 'avx512').tolist() == [
        0, 10, 60, 70]
    padded = pixel_lanes.padded(numpy.arange(1, 41, dtype=numpy.uint8)[
        None], conv)
    assert padded.shape == (1, 2, 6, 10)
    assert padded[0, 1, 1:3, 0:3].tolist() == [[0, 21, 22], [0, 26, 27]]
    assert not padded[0, :, :, 6:].any()


def test_runs_of_four_taps_hold_a_filter_rows_signs_then_zeros():
    conv = packed_format.Convolution((1, 6, 6), 2, 5, 1, 2, 0)
    signs = numpy.array([[1, -1, -1, 1, 1] * 5, [-1] * 25], numpy.float32)
    laid = pixel_lanes.filter_signs(packed_format.pack_signs(signs), conv,
                                    'avx512')
    # Two runs a filter row of five, 32 lanes of four bytes.
    assert laid.shape == (10, 32, 4) and laid.dtype == numpy.int8
    assert laid[0, 0].tolist() == [1, -1, -1, 1]
    assert laid[1, 0].tolist() == [1, 0, 0, 0]
    assert laid[1, 1].tolist() == [-1, 0, 0, 0]
    assert not laid[:, 2:].any()


@pytest.mark.parametrize('channels,ksize,form,expected', [
    (2, 8, 'avx512', True), (3, 7, 'avx2', False), (1, 3, 'scalar', False)])
def test_it_runs_where_the_sums_fit_sixteen_bits(channels, ksize, form,
                                                 expected):
    conv = packed_format.Convolution((channels, 9, 9), 8, ksize, 1, 1, 0)
    assert pixel_lanes.runs(conv, form) is expected
