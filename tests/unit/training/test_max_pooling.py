"""max_pooling.py: Chainer's max-pooling, forward, indexes, backward and
double backward, bit for bit, in one pass a direction where windows do not
overlap."""
import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import max_pooling
import chainer
import chainer.functions as F

from helpers import CHANNELS_LAST, identical_bits, laid_out  # noqa: E402

pytest.importorskip('numba')

# (input shape, ksize, stride, pad, cover_all): the ConvNets' 2 x 2,
# windows that drop or pad a border, strides past the window, rectangles.
CASES = [((5, 3, 28, 28), 2, 2, 0, False), ((2, 4, 7, 7), 2, 2, 0, False),
         ((2, 4, 7, 7), 2, 2, 0, True), ((3, 2, 9, 8), 3, 3, 1, True),
         ((2, 3, 10, 11), (2, 3), (3, 4), (1, 0), False),
         ((1, 1, 5, 5), 1, 2, 0, False), ((2, 2, 6, 6), 3, 3, 0, False)]


def _pool(function, x, gy, **options):
    variable = chainer.Variable(x.copy(order='K'))  # x's layout too
    y = function(variable, **options)
    y.grad = gy.copy()
    y.backward()
    return y.array, variable.grad


@pytest.mark.parametrize('nan', [True, False])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape,ksize,stride,pad,cover_all', CASES)
def test_forward_and_backward_are_chainers(shape, ksize, stride, pad,
                                           cover_all, dtype, channels_last,
                                           nan):
    rng = numpy.random.RandomState(sum(shape))
    # Ties (a few values), negative zeros, infinities and NaNs among them.
    x = rng.choice([-2., -0., 0., 1., 1.5, numpy.inf, -numpy.inf],
                   shape).astype(dtype)
    if nan:
        x.ravel()[::17] = numpy.nan
    if channels_last:  # as a convolution leaves its output
        x = laid_out(x, CHANNELS_LAST)
    options = dict(ksize=ksize, stride=stride, pad=pad, cover_all=cover_all)
    y = F.max_pooling_2d(x, **options).array
    gy = rng.standard_normal(y.shape).astype(dtype)
    gy.ravel()[::5] = -0.
    expected = _pool(F.max_pooling_2d, x, gy, **options)
    actual = _pool(max_pooling.max_pooling_2d, x, gy, **options)
    for e, a in zip(expected, actual):
        identical_bits(e, a)
        assert e.strides == a.strides  # what sums of them add in turn


@pytest.mark.parametrize('nan', [False, True])
def test_a_convolutions_output_is_pooled_along_its_rows(nan, monkeypatch):
    # Channels last, 2 x 2 windows tiling it: the rows' pass, unless a
    # NaN sends it back to the pass by channel.
    x = laid_out(numpy.random.RandomState(3).standard_normal(
        (3, 5, 8, 6)).astype(numpy.float32), CHANNELS_LAST)
    if nan:
        x[1, 2, 3, 4] = numpy.nan
    by_channel = []
    kernel = max_pooling.forward_kernel

    def counted(*args):
        by_channel.append(args)
        return kernel(*args)
    monkeypatch.setattr(max_pooling, 'forward_kernel', counted)
    y = max_pooling.max_pooling_2d(x, 2).array
    identical_bits(y, F.max_pooling_2d(x, 2).array)
    assert len(by_channel) == nan


def test_the_indexes_are_chainers_and_so_is_the_double_backward():
    rng = numpy.random.RandomState(1)
    x = rng.choice([-1., 0., 1.], (2, 3, 8, 8)).astype(numpy.float32)
    chainers = F.pooling.max_pooling_nd.MaxPoolingND(2, 2, 2, 0, False)
    fused = max_pooling.MaxPooling2D(2, 2, 0, False)
    ys = [f.apply((x,))[0].array for f in (chainers, fused)]
    identical_bits(*ys)
    identical_bits(chainers.indexes, fused.indexes)
    grads = []
    for function in (F.max_pooling_2d, max_pooling.max_pooling_2d):
        variable = chainer.Variable(x)
        y = function(variable, 2, 2, cover_all=False)
        gx, = chainer.grad([F.sum(y * y)], [variable],
                           enable_double_backprop=True)
        ggx, = chainer.grad([F.sum(gx * gx)], [variable])
        grads += [(gx.array, ggx.array)]
    for e, a in zip(*grads):
        identical_bits(e, a)


def test_overlapping_windows_are_chainers_own():
    x = numpy.arange(2 * 2 * 6 * 6, dtype=numpy.float32).reshape(2, 2, 6, 6)
    fused = max_pooling.MaxPooling2D(3, 2, 1, True)
    assert not fused.fuses(x)
    y = fused.apply((x,))[0]
    assert not fused.fused
    identical_bits(F.max_pooling_2d(x, 3, 2, 1, True).array, y.array)
    assert max_pooling.MaxPooling2D(2, 2).fuses(x)
    assert not max_pooling.MaxPooling2D(2, 2).fuses(x.astype(numpy.float16))
    half = max_pooling.max_pooling_2d(x.astype(numpy.float16), 2)
    identical_bits(F.max_pooling_2d(x.astype(numpy.float16), 2).array,
                   half.array)


@pytest.mark.gpu
def test_on_the_gpu_it_is_chainers_and_agrees_with_the_cpu():
    # Distinct values, so that every window has one maximum and the
    # gradient one place: then the two are equal.
    x = numpy.random.RandomState(2).permutation(2 * 3 * 8 * 8).astype(
        numpy.float32).reshape(2, 3, 8, 8)
    gy = numpy.random.RandomState(3).standard_normal(
        (2, 3, 4, 4)).astype(numpy.float32)
    expected = _pool(max_pooling.max_pooling_2d, x, gy, ksize=2, stride=2,
                     cover_all=False)
    to_gpu = chainer.backends.cuda.to_gpu
    actual = _pool(max_pooling.max_pooling_2d, to_gpu(x), to_gpu(gy),
                   ksize=2, stride=2, cover_all=False)
    for e, a in zip(expected, actual):
        identical_bits(e, chainer.backends.cuda.to_cpu(a))
