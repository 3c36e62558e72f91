"""filter_lanes.py: the short rows' layer, its filters across the lanes,
against the float +-1 products: rows of one word to the longest laid
across, filters past whole tiles and words, rows past whole tiles, rows
of several classes, flips."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import filter_lanes  # noqa: E402
from quantized_net.packed.kernels import thresholds  # noqa: E402
from helpers import random_signs, reference_fires  # noqa: E402

# (rows, filters, bits a row): 1 to 16 words, filters 1 to 130 (tiles
# of 32, words of 64), rows not a multiple of the tile's 4, and none.
SHAPES = [(1, 1, 9), (7, 5, 64), (33, 32, 288), (50, 33, 576),
          (13, 64, 65), (9, 70, 630), (6, 130, 1000),
          (5, 8, filter_lanes.MAX_ROW_WORDS * 64), (0, 32, 288)]


@pytest.mark.parametrize('m,n,k', SHAPES)
def test_a_layer_of_short_rows_equals_float_products(m, n, k):
    rng = numpy.random.RandomState(k + n)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    classes = rng.randint(0, 3, 11).astype(numpy.int32)
    t = rng.randint(-k // 4, k // 4 + 1, (3, n)).astype(numpy.int32)
    t[:, 0] = [-k - 1, k + 1, 0]  # always, never, half
    flip = rng.rand(n) < 0.5
    limits = numpy.stack([thresholds.pop_limits(row, k) for row in t])
    packed_w = packed_format.pack_signs(w)
    out = filter_lanes.sign_layer(
        packed_format.pack_signs(x).T, filter_lanes.transposed(packed_w, n),
        thresholds.whole_words(limits), classes,
        packed_format.pack_signs(numpy.where(flip, 1, -1)[None, :])[0])
    d = x.dot(w.T)
    row_t = t[classes[numpy.arange(m) % len(classes)]]
    numpy.testing.assert_array_equal(out, reference_fires(d, row_t, flip))


def test_the_weights_are_word_major_in_whole_tiles():
    rows = numpy.arange(2 * 3, dtype=numpy.uint64).reshape(3, 2)
    laid = filter_lanes.transposed(rows, 3)
    assert laid.shape == (2, filter_lanes.TILE_FILTERS)
    assert laid[:, :3].tolist() == [[0, 2, 4], [1, 3, 5]]
    assert not laid[:, 3:].any()
