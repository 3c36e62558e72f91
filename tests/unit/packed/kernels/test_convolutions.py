"""convolutions.py: the taps of each output position as rows of bits,
against a NumPy im2col of the +-1 activations; the bits pooled against a
max of +-1 values."""
import numpy
import pytest

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import convolutions  # noqa: E402
from helpers import random_signs  # noqa: E402


def reference_rows(signs, conv):
    """The rows of taps of +-1 activations ``(images, channels, height,
    width)``, each tap's channels together, -1 outside the image: as
    packed bits."""
    images, channels, height, width = signs.shape
    k, stride, pad = conv.ksize, conv.stride, conv.pad
    padded = numpy.full((images, channels, height + 2 * pad,
                         width + 2 * pad), -1.0)
    padded[:, :, pad:pad + height, pad:pad + width] = signs
    _, out_h, out_w = conv.conv_shape()
    rows = []
    for i in range(images):
        for y in range(out_h):
            for x in range(out_w):
                window = padded[i, :, y * stride:y * stride + k,
                                x * stride:x * stride + k]
                rows.append(window.transpose(1, 2, 0).reshape(-1))
    return packed_format.pack_signs(numpy.array(rows).reshape(
        -1, conv.taps()))


# (channels, size, filter, stride, pad): channels that fill a word evenly
# (1, 2, 32, 64) and that do not (3, 65, 70), strides, no and wide pads.
CASES = [(1, 9, 3, 1, 1), (2, 7, 3, 2, 1), (32, 6, 3, 1, 1),
         (64, 5, 3, 1, 1), (3, 8, 5, 2, 2), (65, 4, 3, 1, 0),
         (70, 5, 2, 1, 1), (32, 5, 1, 1, 0), (4, 7, 3, 3, 2)]


@pytest.mark.parametrize('channels,size,ksize,stride,pad', CASES)
def test_rows_of_taps_are_the_im2col_of_the_signs(channels, size, ksize,
                                                  stride, pad):
    rng = numpy.random.RandomState(channels + size)
    signs = random_signs(rng, (3, channels, size, size))
    conv = packed_format.Convolution((channels, size, size), 8, ksize,
                                     stride, pad, 0)
    h = packed_format.pack_signs(signs.transpose(0, 2, 3, 1).reshape(
        -1, channels)).reshape(3, size, size, -1)
    expected = reference_rows(signs, conv)
    numpy.testing.assert_array_equal(
        convolutions.columns(h, conv, 'scalar'), expected)


def test_pooling_bits_is_max_pooling_signs_then_the_flip():
    rng = numpy.random.RandomState(0)
    signs = random_signs(rng, (2, 70, 7, 7))
    h = packed_format.pack_signs(signs.transpose(0, 2, 3, 1).reshape(
        -1, 70)).reshape(2, 7, 7, -1)
    flip = rng.rand(70) < 0.5
    out = convolutions.pooled(h, 2, convolutions.flip_words(flip))
    pooled = signs[:, :, :6, :6].reshape(2, 70, 3, 2, 3, 2).max(axis=(3, 5))
    pooled = numpy.where(flip[None, :, None, None], -pooled, pooled)
    numpy.testing.assert_array_equal(out, packed_format.pack_signs(
        pooled.transpose(0, 2, 3, 1).reshape(-1, 70)).reshape(2, 3, 3, -1))
