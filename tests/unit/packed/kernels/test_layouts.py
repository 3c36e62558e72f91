"""layouts.py: the rows each form's kernels read, the first layer's masks
and pixel pairs."""
import numpy
import pytest

from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import layouts
from quantized_net.packed.kernels.blocking import MASK_UNITS, TILE


def test_avx2_layout_is_nibble_planes():
    row = numpy.zeros((1, 5), numpy.uint64)
    row[0, 0] = 0xA5
    row[0, 4] = 0x3C << 8
    planes = layouts.layout(row, 'avx2').view(numpy.uint8)
    assert planes.shape == (1, 128)  # 320 bits: two steps of 256
    # Step 0: the low four bits of its 32 bytes, then the high four.
    assert (planes[0, 0], planes[0, 32]) == (0x5, 0xA)
    # Word 4 is the first of step 1; its byte 1 holds 0x3C.
    assert (planes[0, 64 + 1], planes[0, 96 + 1]) == (0xC, 0x3)
    assert numpy.count_nonzero(planes) == 4


@pytest.mark.parametrize('form,words', [('scalar', 2), ('avx512', 8),
                                        ('avx2', 8)])
def test_layouts_pad_the_words_to_whole_vectors(form, words):
    rows = numpy.arange(1, 5, dtype=numpy.uint64).reshape(2, 2)
    out = layouts.layout(rows, form, rows=3)
    assert out.shape == (3, words) == (3, layouts.layout_words(128, form))
    if form != 'avx2':
        numpy.testing.assert_array_equal(out[:2, :2], rows)
        assert not out[:2, 2:].any()
    assert not out[2:].any()


@pytest.mark.parametrize('form', ['scalar', 'avx512', 'avx2'])
def test_weights_have_whole_tiles_of_rows(form):
    w = packed_format.pack_signs(numpy.ones((5, 70)))
    weights = layouts.weights(w, 5, form)
    nr = TILE[form][1]
    assert len(weights.layout) == len(weights.bits) == -(-5 // nr) * nr
    numpy.testing.assert_array_equal(
        weights.layout, layouts.layout(w, form, rows=len(weights.layout)))
    assert layouts.weight_rows(weights, 2) is weights.layout
    if form == 'avx2':  # a batch of one reads the packed bits
        assert layouts.weight_rows(weights, 1) is weights.bits
        numpy.testing.assert_array_equal(weights.bits[:5, :2], w)
        assert not weights.bits[:5, 2:].any() and not weights.bits[5:].any()
        assert weights.bits.shape[1] * 2 == weights.layout.shape[1]
    else:
        assert weights.bits is weights.layout


def test_pixel_masks_pair_the_inputs_of_each_group_of_units():
    rng = numpy.random.RandomState(0)
    n, n_in = MASK_UNITS + 3, 7
    signs = rng.choice([-1., 1.], (n, n_in))
    masks = layouts.pixel_masks(packed_format.pack_signs(signs), n_in)
    assert masks.shape == (2, 4, 2 * MASK_UNITS)
    assert masks.dtype == numpy.uint8
    for j in range(2 * MASK_UNITS):
        g, u = divmod(j, MASK_UNITS)
        for k in range(8):
            expected = j < n and k < n_in and signs[j, k] > 0
            assert masks[g, k // 2, 2 * u + k % 2] == expected, (j, k)


def test_pixel_pairs_pair_neighbours_and_pad_an_odd_last_pixel():
    pixels = numpy.array([[1, 2, 3], [0, 255, 7]], numpy.uint8)
    pairs = layouts.pixel_pairs(pixels)
    assert pairs.dtype == numpy.uint16
    assert pairs.tolist() == [[1 | 2 << 8, 3], [255 << 8, 7]]
    with pytest.raises(TypeError, match='uint8 pixels, not float32'):
        layouts.pixel_pairs(pixels.astype(numpy.float32))


@pytest.mark.parametrize('shape,dtype', [((3, 64), numpy.uint64),
                                         ((2, 5, 256), numpy.uint8),
                                         ((0, 8), numpy.uint64)])
def test_aligned_zeros_start_on_a_cache_line(shape, dtype):
    for _ in range(8):  # allocations land at different offsets
        a = layouts.aligned_zeros(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.size:  # an empty slice keeps its base's address
            assert a.__array_interface__['data'][0] % 64 == 0
        assert not a.any()
