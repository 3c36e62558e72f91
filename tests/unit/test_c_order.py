import numpy
import pytest

from helpers import CHANNELS_LAST, COLUMNS_FIRST, laid_out
from quantized_net import c_order


def _images(shape, dtype=numpy.float32, seed=0):
    a = numpy.random.RandomState(seed).standard_normal(shape).astype(dtype)
    # Bits a copy must keep: NaNs of both signs and payloads, -0, the
    # smallest subnormal.
    a.ravel()[:4] = numpy.array([-0.0, 1e-45, 0, 0], dtype)
    a.ravel().view(numpy.uint32 if dtype == numpy.float32 else
                   numpy.uint64)[2:4] = (
        [0xFFC00001, 0x7F800002] if dtype == numpy.float32 else
        [0xFFF8000000000001, 0x7FF0000000000002])
    return a


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64,
                                   numpy.int64])
@pytest.mark.parametrize('shape', [(3, 5, 4, 7), (1, 16, 28, 28),
                                   (2, 2, 1, 1), (4, 1, 3, 3)])
def test_images_laid_out_channels_last_come_out_c_contiguous(shape, dtype):
    a = _images(shape, dtype) if dtype != numpy.int64 else \
        numpy.arange(numpy.prod(shape)).reshape(shape)
    x = laid_out(a, CHANNELS_LAST)
    y = c_order.c_contiguous(x)
    assert y.flags.c_contiguous and y.dtype == x.dtype and y.shape == shape
    numpy.testing.assert_array_equal(y.view(numpy.uint8),
                                     a.view(numpy.uint8))
    assert not numpy.shares_memory(x, y) or x.flags.c_contiguous


def test_a_c_contiguous_array_is_itself():
    a = _images((2, 3, 4, 5))
    assert c_order.c_contiguous(a) is a


@pytest.mark.parametrize('make', [
    lambda a: laid_out(a, COLUMNS_FIRST),
    lambda a: a[:, :, 1:3, 1:4],  # a padded image's view, as col2im's
    lambda a: a[:, ::2],
    lambda a: numpy.asfortranarray(a),
    lambda a: a.reshape(2, 3, 20)])
def test_other_layouts_are_numpys_copy(make):
    x = make(_images((2, 3, 4, 5)))
    y = c_order.c_contiguous(x)
    expected = numpy.ascontiguousarray(x)
    assert y.flags.c_contiguous and y.shape == expected.shape
    numpy.testing.assert_array_equal(y.view(numpy.uint8),
                                     expected.view(numpy.uint8))


def test_which_images_are_channels_last():
    a = numpy.zeros((2, 3, 4, 5), numpy.float32)
    assert c_order.channels_last(laid_out(a, CHANNELS_LAST))
    assert not c_order.channels_last(a)
    assert not c_order.channels_last(laid_out(a, COLUMNS_FIRST))
    assert not c_order.channels_last(numpy.zeros((2, 3, 4), numpy.float32))
    # One channel: C-contiguous, as its copy would be.
    assert not c_order.channels_last(numpy.zeros((2, 1, 4, 5)))


def test_empty_images():
    x = laid_out(numpy.zeros((0, 3, 4, 5), numpy.float32), CHANNELS_LAST)
    assert c_order.c_contiguous(x).shape == (0, 3, 4, 5)
