"""clip.py: Chainer's clip, its gradient bit for bit in one pass."""
import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import clip
import chainer
import chainer.functions as F

from helpers import (  # noqa: E402
    C_ORDER, CHANNELS_LAST, COLUMNS_FIRST, identical_bits, laid_out)

pytest.importorskip('numba')


def _clip(function, x, gy, *bounds):
    variable = chainer.Variable(x)
    y = function(variable, *bounds)
    y.grad = gy
    y.backward()
    return y.array, variable.grad


@pytest.mark.filterwarnings('ignore:invalid value encountered in multiply')
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('bounds', [(-1., 1.), (None, 0.1), (-0.3, None),
                                    (0., 2.5)])
def test_output_and_gradient_are_chainers(dtype, bounds):
    rng = numpy.random.RandomState(0)
    # The bounds themselves, zeros of both signs, NaN and infinities in
    # the input and the gradient.
    x = rng.choice([-2., -1., -0.3, -0., 0., 0.1, 0.5, 1., 2.5, 3.,
                    numpy.nan, numpy.inf, -numpy.inf], (7, 11)).astype(dtype)
    x[0, :3] = numpy.float32(0.1), 0.1, -0.3
    gy = rng.choice([-1.5, -0., 0., 2., numpy.nan, numpy.inf, -numpy.inf],
                    x.shape).astype(dtype)
    expected = _clip(F.clip, x, gy, *bounds)
    actual = _clip(clip.clip, x, gy, *bounds)
    for e, a in zip(expected, actual):
        identical_bits(e, a)


def _assert_the_gradient_is_chainers(x, gy):
    """The hard tanh's gradient, its values and its layout."""
    expected = _clip(F.clip, x, gy, -1., 1.)[1]
    actual = _clip(clip.clip, x, gy, -1., 1.)[1]
    assert expected.strides == actual.strides
    identical_bits(numpy.ascontiguousarray(expected),
                   numpy.ascontiguousarray(actual))


@pytest.mark.parametrize('x_order', [C_ORDER, CHANNELS_LAST, COLUMNS_FIRST])
@pytest.mark.parametrize('gy_order', [C_ORDER, CHANNELS_LAST])
def test_the_gradient_is_laid_out_as_chainers(x_order, gy_order):
    # NumPy lays out gy * cond as its operands where they agree, else in
    # C order; the sums that add the gradient later follow its layout.
    rng = numpy.random.RandomState(1)
    x = laid_out(rng.uniform(-2, 2, (3, 4, 5, 6)).astype(numpy.float32),
                 x_order)
    gy = laid_out(rng.standard_normal(x.shape).astype(numpy.float32),
                  gy_order)
    _assert_the_gradient_is_chainers(x, gy)


def test_a_broadcast_input_gives_the_gradient_chainers_layout():
    # Chainer's mask is a full array, laid out as NumPy lays out the
    # comparison of x, whatever x's strides (here a stride of 0).
    rng = numpy.random.RandomState(2)
    x = numpy.broadcast_to(
        rng.uniform(-2, 2, (2, 1, 4, 5)).astype(numpy.float32), (2, 3, 4, 5))
    gy = laid_out(rng.standard_normal(x.shape).astype(numpy.float32),
                  CHANNELS_LAST)
    _assert_the_gradient_is_chainers(x, gy)


def test_a_second_order_gradient_is_chainers():
    x = numpy.linspace(-2, 2, 12).astype(numpy.float32).reshape(3, 4)
    grads = []
    for function in (F.clip, clip.clip):
        variable = chainer.Variable(x)
        y = function(variable, -1., 1.)
        gx, = chainer.grad([F.sum(y * y * y)], [variable],
                           enable_double_backprop=True)
        ggx, = chainer.grad([F.sum(gx * gx)], [variable])
        grads.append((gx.array, ggx.array))
    for e, a in zip(*grads):
        identical_bits(e, a)


def test_bounds_are_checked_as_chainers():
    with pytest.raises(ValueError, match='x_min must be less than x_max'):
        clip.clip(numpy.zeros(3, numpy.float32), 1., -1.)
    with pytest.raises(ValueError, match='must set either max or min'):
        clip.ClipGrad(numpy.zeros(3, numpy.float32), None, None)


@pytest.mark.gpu
def test_on_the_gpu_it_is_chainers_and_agrees_with_the_cpu():
    x = numpy.linspace(-2, 2, 40).astype(numpy.float32).reshape(5, 8)
    gy = numpy.linspace(3, -3, 40).astype(numpy.float32).reshape(5, 8)
    expected = _clip(clip.clip, x, gy, -1., 1.)
    to_gpu = chainer.backends.cuda.to_gpu
    actual = _clip(clip.clip, to_gpu(x), to_gpu(gy), -1., 1.)
    for e, a in zip(expected, actual):
        identical_bits(e, chainer.backends.cuda.to_cpu(a))
