"""tap_planes.py: the words of a position's row for channels below, at and
above a word, across rows and down the columns left over, the planes against
the padded taps they hold, and the filters' words against the taps' signs."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import tap_planes  # noqa: E402
from helpers import random_signs  # noqa: E402

Word = tap_planes.Word


def test_thirty_two_channels_take_two_taps_across_then_the_last_column():
    assert tap_planes.row_words(32, 3) == [
        Word(0, 0, 2, 0, False), Word(1, 0, 2, 0, False),
        Word(2, 0, 2, 0, False), Word(0, 2, 2, 1, True),
        Word(2, 2, 1, 2, True)]
    taps, down = tap_planes.plane_runs(32, 3)
    assert taps.tolist() == [2, 2, 1] and down.tolist() == [0, 1, 1]


def test_narrow_channels_take_a_whole_filter_row_a_word():
    assert tap_planes.row_words(5, 3) == [
        Word(0, 0, 3, 0, False), Word(1, 0, 3, 0, False),
        Word(2, 0, 3, 0, False)]
    taps, down = tap_planes.plane_runs(5, 3)
    assert taps.tolist() == [3] and down.tolist() == [0]
    # 64 // 20 = 3 taps a word: 4 words across, then the last column of 4
    # taps down in 3 and 1.
    assert tap_planes.row_words(20, 4)[3:] == [
        Word(3, 0, 3, 0, False), Word(0, 3, 3, 1, True),
        Word(3, 3, 1, 2, True)]


def test_wide_channels_take_words_a_tap():
    assert tap_planes.row_words(64, 2) == [
        Word(0, 0, 1, 0, False), Word(0, 1, 1, 0, False),
        Word(1, 0, 1, 0, False), Word(1, 1, 1, 0, False)]
    assert tap_planes.row_words(70, 1) == [Word(0, 0, 1, 0, False),
                                           Word(0, 0, 1, 1, False)]
    taps, down = tap_planes.plane_runs(70, 1)
    assert taps.tolist() == [1, 1] and down.tolist() == [0, 0]


def test_offsets_are_bytes_from_the_top_left_tap():
    # 32 channels, width 5 padded by 1: a row of 3 planes of 7 words.
    conv = packed_format.Convolution((32, 4, 5), 8, 3, 1, 1, 0)
    assert tap_planes.word_offsets(conv).tolist() == [
        0, 21 * 8, 42 * 8, 7 * 8 + 2 * 8, 42 * 8 + 14 * 8 + 2 * 8]
    # 70 channels, width 5: a row of 2 planes of 5 words.
    conv = packed_format.Convolution((70, 4, 5), 8, 2, 1, 0, 0)
    assert tap_planes.word_offsets(conv).tolist() == [
        0, 5 * 8, 8, 6 * 8, 10 * 8, 15 * 8, 11 * 8, 16 * 8]


def padded_signs(signs, pad):
    images, channels, height, width = signs.shape
    out = -numpy.ones((images, channels, height + 2 * pad, width + 2 * pad))
    out[:, :, pad:pad + height, pad:pad + width] = signs
    return out


@pytest.mark.parametrize('channels,ksize,pad', [
    (32, 3, 1), (5, 3, 2), (20, 4, 0), (64, 3, 1), (70, 2, 1)])
def test_each_plane_word_holds_its_taps_padded_with_zero_bits(
        channels, ksize, pad):
    rng = numpy.random.RandomState(channels)
    signs = random_signs(rng, (2, channels, 5, 6))
    conv = packed_format.Convolution((channels, 5, 6), 4, ksize, 1, pad, 0)
    h = packed_format.pack_signs(signs.transpose(0, 2, 3, 1).reshape(
        -1, channels)).reshape(2, 5, 6, -1)
    planes = tap_planes.planes(h, conv)
    padded = padded_signs(signs, pad)
    taps, down = tap_planes.plane_runs(channels, ksize)
    assert planes.shape == (2, 5 + 2 * pad, len(taps), 6 + 2 * pad)
    for y in range(planes.shape[1]):
        for x in range(planes.shape[3]):
            for p in range(planes.shape[2]):
                if channels > 64:
                    cells = padded[:, p * 64:(p + 1) * 64, y, x]
                elif down[p]:
                    cells = padded[:, :, y:y + taps[p], x].transpose(
                        0, 2, 1).reshape(2, -1)
                else:
                    cells = padded[:, :, y, x:x + taps[p]].transpose(
                        0, 2, 1).reshape(2, -1)
                if cells.shape[1] < taps[p] * channels:
                    cells = numpy.hstack([cells, -numpy.ones(
                        (2, taps[p] * channels - cells.shape[1]))])
                numpy.testing.assert_array_equal(
                    planes[:, y, p, x],
                    packed_format.pack_signs(cells)[:, 0])


def test_the_filters_words_hold_their_taps_in_row_order():
    rng = numpy.random.RandomState(1)
    filters = random_signs(rng, (3, 32, 3, 3))
    conv = packed_format.Convolution((32, 6, 6), 3, 3, 1, 1, 0)
    laid = tap_planes.filter_words(
        packed_format.pack_signs(filters.reshape(3, -1)), conv)
    assert laid.shape == (3, 5)
    for n, word in enumerate(tap_planes.row_words(32, 3)):
        taps = (filters[:, :, word.ky:word.ky + word.taps, word.kx]
                if word.down else
                filters[:, :, word.ky, word.kx:word.kx + word.taps])
        expected = packed_format.pack_signs(numpy.hstack([
            taps.transpose(0, 2, 1).reshape(3, -1),
            -numpy.ones((3, 64 - 32 * word.taps))]))[:, 0]
        numpy.testing.assert_array_equal(laid[:, n], expected)
