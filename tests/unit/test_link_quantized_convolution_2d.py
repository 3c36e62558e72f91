import numpy

import chainer

from function_quantized_convolution_2d import quantized_convolution_2d
from link_quantized_convolution_2d import QuantizedConvolution2D


def test_initialisation_is_normal_with_variance_one_over_fan_in():
    numpy.random.seed(0)
    link = QuantizedConvolution2D(64, 128, 3)
    W = link.W.array
    assert W.shape == (128, 64, 3, 3) and W.dtype == numpy.float32
    assert abs(W.mean()) < 0.002
    assert abs(W.var() * 64 * 9 - 1) < 0.02
    numpy.testing.assert_array_equal(link.b.array, numpy.zeros(128))


def test_forward_is_quantized_convolution_2d():
    link = QuantizedConvolution2D(3, 4, (3, 2), stride=(2, 1), pad=(1, 0),
                                  weight_quant='sign', input_quant='none',
                                  grad_quant='none')
    link.b.array[:] = [0.5, -0.5, 1.0, 2.0]
    x = numpy.random.RandomState(0).rand(2, 3, 9, 8).astype(numpy.float32)
    numpy.testing.assert_array_equal(
        link(x).array, quantized_convolution_2d(
            x, link.W.array, link.b.array, (2, 1), (1, 0), 'none', 'sign',
            'none').array)


def test_lazy_input_channels_and_nobias():
    link = QuantizedConvolution2D(None, 5, 3, pad=1, nobias=True)
    assert link.b is None
    y = link(numpy.zeros((2, 7, 6, 6), numpy.float32))
    assert link.W.shape == (5, 7, 3, 3) and y.shape == (2, 5, 6, 6)


def test_parameters_get_the_straight_through_gradients():
    link = QuantizedConvolution2D(2, 3, 3, pad=1, input_quant='sign',
                                  weight_quant='sign', grad_quant='none')
    link.cleargrads()
    x = chainer.Variable(numpy.random.RandomState(1).uniform(
        -1, 1, (4, 2, 5, 5)).astype(numpy.float32))
    chainer.functions.sum(link(x)).backward()
    # The gradients of Chainer's convolution of the signs, which the real
    # values receive unchanged.
    xs = chainer.Variable(numpy.where(x.array >= 0, 1, -1).astype(
        numpy.float32))
    Ws = chainer.Variable(numpy.where(link.W.array >= 0, 1, -1).astype(
        numpy.float32))
    chainer.functions.sum(chainer.functions.convolution_2d(
        xs, Ws, None, 1, 1)).backward()
    numpy.testing.assert_array_equal(link.W.grad, Ws.grad)
    numpy.testing.assert_array_equal(x.grad, xs.grad)
    numpy.testing.assert_array_equal(link.b.grad, [100, 100, 100])
