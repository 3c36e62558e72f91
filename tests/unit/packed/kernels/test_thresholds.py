"""thresholds.py: the limits equivalent to the thresholds, and the output
words of 64 units' compare."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net import kernel_cache  # noqa: E402
from quantized_net.packed.format import unit_fires  # noqa: E402
from quantized_net.packed.kernels import thresholds  # noqa: E402


def test_pop_limits_match_dot_thresholds():
    k = 9
    t = numpy.arange(-k - 2, k + 3, dtype=numpy.int32)
    limits = thresholds.pop_limits(t, k)
    pop = numpy.arange(k + 1)[:, None]
    numpy.testing.assert_array_equal(pop <= limits, k - 2 * pop >= t)


def test_units_past_the_last_never_fire_in_whole_words():
    limits = thresholds.whole_words(numpy.array([[3, 4], [5, 6]],
                                                numpy.int32))
    assert limits.shape == (2, 64)
    assert limits[:, :2].tolist() == [[3, 4], [5, 6]]
    assert (limits[:, 2:] == numpy.iinfo(numpy.int32).min).all()


def test_pixel_limits_negate_thresholds_and_clamp_the_lowest():
    limits = thresholds.pixel_limits(numpy.array(
        [5, -3, 0, -2 ** 31 + 1, -2 ** 31, 2 ** 31 - 1], numpy.int32))
    assert limits.dtype == numpy.int32
    assert limits.tolist() == [-5, 3, 0, 2 ** 31 - 1, 2 ** 31 - 1,
                               -2 ** 31 + 1]


@kernel_cache.njit
def _output_word(values, limits, flip, j0, split):
    lim = numpy.empty(64, numpy.int32)
    flp = numpy.empty(64, numpy.bool_)
    thresholds.word_limits(limits, flip, j0, limits.shape[0], lim, flp)
    out = numpy.zeros((1, 8), numpy.uint64)
    thresholds.store_word(out, 0, 1, thresholds.at_most(
        values.ctypes.data, lim.ctypes.data) ^ thresholds.flip_bits(flp),
        split)
    return out


@pytest.mark.parametrize('j0', [0, 64])
def test_a_word_is_64_units_compare_and_flip(j0):
    # 100 units: the second word has 36, the rest never fire.
    rng = numpy.random.RandomState(j0)
    limits = rng.randint(-5, 5, 100).astype(numpy.int32)
    flip = rng.rand(100) < 0.5
    values = rng.randint(-6, 6, 64).astype(numpy.int32)
    units = min(64, 100 - j0)
    fires = numpy.zeros(64, bool)
    fires[:units] = unit_fires(-values[:units], -limits[j0:j0 + units],
                               flip[j0:j0 + units])
    word = int(numpy.packbits(fires, bitorder='little').view('<u8')[0])
    out = _output_word(values, limits, flip, j0, False)
    assert out[0].tolist() == [0, word, 0, 0, 0, 0, 0, 0]
    # The avx2 layout: word 1's low nibbles at byte 8, the high ones at 40.
    split = _output_word(values, limits, flip, j0, True)
    nibbles = 0x0F0F0F0F0F0F0F0F
    assert split[0].tolist() == [0, word & nibbles, 0, 0, 0,
                                 (word >> 4) & nibbles, 0, 0]
