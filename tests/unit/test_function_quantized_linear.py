import numpy
import pytest

import chainer
from chainer import utils

from function_quantized_linear import quantized_linear
from helpers import original_seed_formula
from quantized_net.quantization import quantizers

seed = quantizers.parse('seed')


def log_quant64(v):
    """The original's LogQuant(64 v, 64), values up to 64."""
    return original_seed_formula(v) * numpy.float32(64)


def make(n=8, k=12, m=5, seed=0):
    rng = numpy.random.RandomState(seed)
    x = rng.rand(n, k).astype(numpy.float32)
    W = (rng.randn(m, k) * 0.3).astype(numpy.float32)
    b = rng.randn(m).astype(numpy.float32)
    return x, W, b


def test_forward_is_original_formula():
    x, W, b = make()
    y = quantized_linear(x, W, b).array
    expected = log_quant64(x).dot(log_quant64(W).T) / 4096 + b
    numpy.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)
    assert y.dtype == numpy.float32


def test_forward_uses_quantized_values_only():
    x, W, b = make()
    # Quantizing is idempotent: pre-quantized operands give the same output.
    numpy.testing.assert_array_equal(
        quantized_linear(x, W, b).array,
        quantized_linear(seed(x), seed(W), b).array)


def backward(gy_seed, gy_scale, **quants):
    """Runs quantized_linear forward and backward on ``make()``'s inputs;
    returns the inputs, the output gradient, the output and the gradients
    of x, W and b."""
    x, W, b = make()
    gy = (numpy.random.RandomState(gy_seed).randn(8, 5) * gy_scale).astype(
        numpy.float32)
    xv, Wv, bv = (chainer.Variable(a) for a in (x, W, b))
    y = quantized_linear(xv, Wv, bv, **quants)
    y.grad = gy
    y.backward()
    return x, W, b, gy, y.array, xv.grad, Wv.grad, bv.grad


def test_backward_is_original_formula():
    x, W, _, gy, _, gx, gW, gb = backward(1, 0.01)
    gq = log_quant64(gy)
    numpy.testing.assert_allclose(gx, gq.dot(log_quant64(W)) / 4096,
                                  rtol=1e-6)
    numpy.testing.assert_allclose(gW, gq.T.dot(log_quant64(x)) / 4096,
                                  rtol=1e-6)
    numpy.testing.assert_allclose(gb, gy.sum(axis=0), rtol=1e-6)


def test_without_bias():
    x, W, b = make()
    with_bias = quantized_linear(x, W, b).array
    without = quantized_linear(x, W).array
    numpy.testing.assert_allclose(with_bias - b, without, rtol=1e-6,
                                  atol=1e-6)
    Wv = chainer.Variable(W)
    y = quantized_linear(x, Wv)
    y.grad = numpy.ones_like(y.array)
    y.backward()
    assert Wv.grad.shape == W.shape


def test_more_than_two_dimensions_are_flattened():
    rng = numpy.random.RandomState(2)
    x = rng.rand(4, 3, 2, 2).astype(numpy.float32)
    W = rng.randn(6, 12).astype(numpy.float32)
    xv = chainer.Variable(x)
    y = quantized_linear(xv, W)
    assert y.shape == (4, 6)
    numpy.testing.assert_array_equal(
        y.array, quantized_linear(x.reshape(4, 12), W).array)
    y.grad = numpy.ones((4, 6), numpy.float32)
    y.backward()
    assert xv.grad.shape == x.shape


@pytest.mark.parametrize('x_shape,w_shape,b_shape,dtype', [
    ((4, 12), (5, 11), (5,), numpy.float32),   # K mismatch
    ((4, 12), (5, 12), (4,), numpy.float32),   # bias length
    ((4, 12), (5, 12), (5,), numpy.float64),   # dtype
])
def test_type_errors(x_shape, w_shape, b_shape, dtype):
    with pytest.raises(utils.type_check.InvalidType):
        quantized_linear(numpy.zeros(x_shape, dtype),
                         numpy.zeros(w_shape, dtype),
                         numpy.zeros(b_shape, dtype))


@pytest.mark.gpu
def test_gpu_equals_cpu():
    import cupy
    x, W, b = make(n=100, k=784, m=300, seed=3)
    gy = (numpy.random.RandomState(4).randn(100, 300) * 0.01).astype(
        numpy.float32)
    results = []
    for xp in (numpy, cupy):
        vs = [chainer.Variable(xp.asarray(a)) for a in (x, W, b)]
        y = quantized_linear(*vs)
        y.grad = xp.asarray(gy)
        y.backward()
        results.append([cupy.asnumpy(a) for a in
                        [y.array] + [v.grad for v in vs]])
    for cpu, gpu in zip(*results):
        # Same quantized operands; only the summation order of the
        # matrix products differs.
        numpy.testing.assert_allclose(cpu, gpu, rtol=1e-5, atol=1e-6)


def test_other_quantizers_per_role():
    x, W, b, gy, y, gx, gW, _ = backward(
        5, 0.01, input_quant='none', weight_quant='sign', grad_quant='none')
    sign_W = numpy.where(W >= 0, 1, -1).astype(numpy.float32)
    numpy.testing.assert_allclose(y, x.dot(sign_W.T) + b, rtol=1e-6)
    numpy.testing.assert_allclose(gx, gy.dot(sign_W), rtol=1e-5)
    numpy.testing.assert_allclose(gW, gy.T.dot(x), rtol=1e-5)


def test_gradient_quantizer_applies_to_gx_and_gw_not_gb():
    x, W, _, gy, _, gx, gW, gb = backward(
        6, 0.3, input_quant='none', weight_quant='none',
        grad_quant='linear:2')
    gq = quantizers.parse('linear:2')(gy)
    numpy.testing.assert_allclose(gx, gq.dot(W), rtol=1e-5)
    numpy.testing.assert_allclose(gW, gq.T.dot(x), rtol=1e-5)
    numpy.testing.assert_allclose(gb, gy.sum(axis=0), rtol=1e-5)
