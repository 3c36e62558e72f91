"""tiles.py: every form's tiles count the differing bits of two rows in
its layout, at any offset into the rows, past a chunk of steps."""
import numpy
import pytest

pytest.importorskip('numba')
import numba  # noqa: E402

from quantized_net import kernel_cache  # noqa: E402
from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import layouts, tiles  # noqa: E402
from helpers import random_signs  # noqa: E402


@kernel_cache.njit
def _pops(x, w, i0, rows, j0, units, counts, form):
    numba.literally(form)
    tiles.pops(x, w, i0, rows, j0, units, counts, form)


# Whole tiles of rows and a remainder of one, weights read from the middle
# of their rows, rows of 8257 bits: past the avx2 chunk of 31 steps.
@pytest.mark.parametrize('m,i0,rows,n,j0,units,k', [
    (9, 0, 9, 16, 0, 16, 2048), (9, 3, 5, 24, 8, 9, 130),
    (1, 0, 1, 8, 0, 8, 8257), (6, 1, 5, 16, 8, 8, 64)])
def test_pops_count_the_differing_bits(hidden_form, m, i0, rows, n, j0,
                                       units, k):
    rng = numpy.random.RandomState(k)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    expected = ((k - x.dot(w.T)) // 2).astype(numpy.int32)
    laid_out = layouts.weights(packed_format.pack_signs(w), n, hidden_form)
    for w_rows in {id(r): r for r in laid_out}.values():  # avx2: both
        counts = numpy.full((32, 64), -1, numpy.int32)
        _pops(layouts.layout(packed_format.pack_signs(x), hidden_form),
              w_rows, i0, rows, j0, units, counts, hidden_form)
        numpy.testing.assert_array_equal(
            counts[:rows, :units],
            expected[i0:i0 + rows, j0:j0 + units])
