import numpy

import chainer

from function_quantized_linear import quantized_linear
from link_quantized_linear import QuantizedLinear
from quantized_net.quantization import quantizers


def test_initialisation_is_normal_with_variance_one_over_in_size():
    numpy.random.seed(0)
    link = QuantizedLinear(400, 500)
    W = link.W.array
    assert W.shape == (500, 400) and W.dtype == numpy.float32
    assert abs(W.mean()) < 0.002
    assert abs(W.var() * 400 - 1) < 0.02
    numpy.testing.assert_array_equal(link.b.array, numpy.zeros(500))


def test_forward_is_quantized_linear():
    link = QuantizedLinear(6, 3)
    link.b.array[:] = [0.5, -0.5, 1.0]
    x = numpy.random.RandomState(0).rand(4, 6).astype(numpy.float32)
    numpy.testing.assert_array_equal(
        link(x).array, quantized_linear(x, link.W.array, link.b.array).array)


def test_lazy_input_size_and_nobias():
    link = QuantizedLinear(None, 3, nobias=True)
    assert link.b is None
    y = link(numpy.zeros((2, 2, 5), numpy.float32))
    assert link.W.shape == (3, 10) and y.shape == (2, 3)


def test_parameters_get_the_quantized_gradients():
    link = QuantizedLinear(6, 3)
    link.cleargrads()
    x = chainer.Variable(
        numpy.random.RandomState(1).rand(4, 6).astype(numpy.float32))
    chainer.functions.sum(link(x)).backward()
    # gy is all ones, which the seed quantizer keeps: gW = 1^T q(x),
    # gx = 1 q(W), gb = 1^T 1.
    seed = quantizers.parse('seed')
    ones = numpy.ones((4, 3), numpy.float32)
    numpy.testing.assert_allclose(link.W.grad, ones.T.dot(seed(x.array)),
                                  rtol=1e-6)
    numpy.testing.assert_allclose(x.grad, ones.dot(seed(link.W.array)),
                                  rtol=1e-6)
    numpy.testing.assert_array_equal(link.b.grad, [4, 4, 4])
