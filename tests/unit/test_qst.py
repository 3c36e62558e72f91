import numpy
import pytest

import chainer
import chainer.functions  # noqa: F401
from chainer import utils

import helpers
from quantized_net.quantization import kernels
from quantized_net.quantization import quantizers
from qst import qst


def test_forward_is_original_formula():
    x = numpy.array([-3.0, -1.0, -0.3, 0.0, 0.2, 0.75, 1.0, 2.5],
                    numpy.float32)
    y = qst(x).array
    # LogQuant(64 x, 64) / 4096
    expected = numpy.array([-64, -64, -16, 0, 16, 64, 64, 64],
                           numpy.float32) / 4096
    numpy.testing.assert_array_equal(y, expected)
    assert y.dtype == numpy.float32


def test_forward_equals_seed_quant_over_64():
    x = numpy.random.RandomState(0).randn(50, 30).astype(numpy.float32)
    numpy.testing.assert_array_equal(qst(x).array,
                                     quantizers.parse('seed')(x) / 64)


def test_backward_passes_where_abs_x_at_most_one():
    x = numpy.array([-2.0, -1.0000001, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0000001,
                     7.0], numpy.float32)
    gy = numpy.arange(1, 10, dtype=numpy.float32)
    v = chainer.Variable(x)
    y = qst(v)
    y.grad = gy
    y.backward()
    numpy.testing.assert_array_equal(
        v.grad, [0, 0, 3, 4, 5, 6, 7, 0, 0])


def test_backward_is_differentiable():
    x = chainer.Variable(numpy.array([0.5, 2.0], numpy.float32))
    gy = chainer.Variable(numpy.array([3.0, 4.0], numpy.float32))
    y = qst(x)
    gx, = chainer.grad([y], [x], grad_outputs=[gy],
                       enable_double_backprop=True)
    ggx = chainer.grad([gx], [gy], grad_outputs=[numpy.ones(2, numpy.float32)])
    numpy.testing.assert_array_equal(ggx[0].array, [1, 0])


def test_shape_kept():
    x = numpy.zeros((2, 3, 4), numpy.float32)
    assert qst(x).shape == (2, 3, 4)


def test_rejects_float64():
    with pytest.raises(utils.type_check.InvalidType):
        qst(numpy.zeros(3, numpy.float64))


@pytest.mark.gpu
def test_gpu_equals_cpu():
    import cupy
    rng = numpy.random.RandomState(1)
    x = (rng.randn(64, 100) * 2).astype(numpy.float32)
    gy = rng.randn(64, 100).astype(numpy.float32)
    results = []
    for xp in (numpy, cupy):
        v = chainer.Variable(xp.asarray(x))
        y = qst(v)
        y.grad = xp.asarray(gy)
        y.backward()
        results.append((cupy.asnumpy(y.array), cupy.asnumpy(v.grad)))
    for cpu, gpu in zip(*results):
        numpy.testing.assert_array_equal(cpu, gpu)


def test_cancelled_gradients_are_zero_even_where_infinite():
    x = chainer.Variable(numpy.float32([2.0, -3.0, 0.5, 1e-45]))
    y = qst(x, 'sign')
    y.grad = numpy.float32([numpy.inf, numpy.nan, -numpy.inf, 1e-45])
    y.backward()
    assert x.grad.tolist() == [0.0, 0.0, -numpy.inf, 2.0 ** -149]


@pytest.mark.gpu
def test_gpu_gradient_keeps_subnormals():
    import cupy
    x = numpy.float32([1e-45, -1e-45, 0.5, 2.0])
    gy = numpy.float32([-1e-45, 3e-39, 1e-40, 1.0])
    grads = []
    for xp in (numpy, cupy):
        v = chainer.Variable(xp.asarray(x))
        y = qst(v, 'sign')
        y.grad = xp.asarray(gy)
        y.backward()
        grads.append(cupy.asnumpy(v.grad))
    numpy.testing.assert_array_equal(grads[0].view(numpy.uint32),
                                     grads[1].view(numpy.uint32))
    assert grads[1].tolist() == gy[:3].tolist() + [0.0]  # |2| > 1


def test_none_passes_through_without_cancellation():
    x = chainer.Variable(numpy.array([-3.0, 0.5, 2.0], numpy.float32))
    y = qst(x, 'none')
    numpy.testing.assert_array_equal(y.array, x.array)
    y.grad = numpy.ones(3, numpy.float32)
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [1, 1, 1])


@pytest.mark.parametrize('spec', ['sign', 'linear:2', 'log:3', 'stochastic'])
def test_other_quantizers_forward_and_cancelled_gradient(spec):
    numpy.random.seed(0)
    x = chainer.Variable(numpy.array([-3.0, -0.4, 0.3, 0.9, 2.0],
                                     numpy.float32))
    y = qst(x, spec)
    with chainer.using_config('train', False):
        expected = quantizers.parse(spec)(x.array)
    if spec != 'stochastic':
        numpy.testing.assert_array_equal(y.array, expected)
    y.grad = numpy.full(5, 2, numpy.float32)
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [0, 2, 2, 2, 0])


def _relu_after(x, spec, gy, rectified):
    """``relu(qst(x, spec))``, fused or as Chainer's ``relu`` after it:
    the output, the gradient of ``x`` for ``gy``, and the gradient of
    ``gy`` through that gradient (double backpropagation) for ones."""
    xp = chainer.backend.get_array_module(x)
    numpy.random.seed(5)
    v = chainer.Variable(x)
    if rectified:
        y = qst(v, spec, rectified=True)
    else:
        y = chainer.functions.relu(qst(v, spec))
    g = chainer.Variable(gy)
    # An infinite gy that the rectifier cancels is NaN, as intended.
    with numpy.errstate(invalid='ignore'):
        gx, = chainer.grad([y], [v], grad_outputs=[g],
                           enable_double_backprop=True)
        ggy, = chainer.grad([gx], [g], grad_outputs=[xp.ones_like(gy)])
    return y.array, gx.array, ggy.array


RECTIFIED_SPECS = ['seed', 'sign', 'linear:2', 'log:3', 'log:4:4',
                   'stochastic', 'none']


@pytest.mark.parametrize('spec', RECTIFIED_SPECS)
def test_rectified_is_chainers_relu_after_it_bit_for_bit(spec):
    # Every class of float32 in x and in gy: zeros of both signs (the
    # rectifier makes -0 +0), subnormals, NaN, infinities, values at +-1.
    x = helpers.kernel_inputs()
    gy = numpy.roll(x, 11)
    for name in kernels.usable_cpu_kernels():
        with kernels.using_cpu_kernels(name):
            fused = _relu_after(x, spec, gy, True)
            chainers = _relu_after(x, spec, gy, False)
        for ours, theirs in zip(fused, chainers):
            helpers.identical_bits(ours, theirs)


def test_rectified_is_one_function_each_way():
    x = chainer.Variable(numpy.float32([[-0.5, 0.25], [0.75, 2.0]]))
    y = qst(x, rectified=True)
    assert type(y.creator).__name__ == 'QuantizedStraightThrough'
    assert y.creator.inputs[0] is x.node
    numpy.testing.assert_array_equal(
        y.array, numpy.float32([[0, 16], [64, 64]]) / 4096)
    y.grad = numpy.float32([[1, 2], [3, 4]])
    y.backward()
    # Cancelled where the output is 0 and where |x| > 1.
    numpy.testing.assert_array_equal(x.grad, [[0, 2], [3, 0]])


@pytest.mark.gpu
@pytest.mark.parametrize('spec', RECTIFIED_SPECS)
def test_rectified_on_the_gpu_is_chainers_relu_after_it(spec):
    # On the GPU the rectifier is CuPy's maximum (a NaN becomes CuPy's
    # NaN, a subnormal is flushed): the fused kernel gives its bits.
    import cupy
    x = cupy.asarray(helpers.kernel_inputs())
    gy = cupy.roll(x, 11)
    fused = _relu_after(x, spec, gy, True)
    chainers = _relu_after(x, spec, gy, False)
    for ours, theirs in zip(fused, chainers):
        helpers.identical_bits(cupy.asnumpy(ours),
                               cupy.asnumpy(theirs))
