import numpy
import pytest

import chainer
from chainer import gradient_check
from chainer import utils

from function_quantized_convolution_2d import quantized_convolution_2d
from quantized_net.quantization import quantizers


def make(n=2, c=3, h=7, w=6, m=4, kh=3, kw=2, seed=0):
    rng = numpy.random.RandomState(seed)
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(numpy.float32)
    W = rng.uniform(-1, 1, (m, c, kh, kw)).astype(numpy.float32)
    b = rng.uniform(-1, 1, m).astype(numpy.float32)
    return x, W, b


def pair(v):
    return (v, v) if isinstance(v, int) else v


def reference_convolution(x, W, b, stride, pad):
    """The convolution by its definition, in float64: zero padding, then
    each output the sum of a filter times the window it covers."""
    (sy, sx), (ph, pw) = pair(stride), pair(pad)
    n, c, h, w = x.shape
    m, _, kh, kw = W.shape
    padded = numpy.zeros((n, c, h + 2 * ph, w + 2 * pw))
    padded[:, :, ph:ph + h, pw:pw + w] = x
    oh = (h + 2 * ph - kh) // sy + 1
    ow = (w + 2 * pw - kw) // sx + 1
    y = numpy.zeros((n, m, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = padded[:, :, i * sy:i * sy + kh, j * sx:j * sx + kw]
            y[:, :, i, j] = numpy.einsum('nckl,mckl->nm', window, W)
    if b is not None:
        y += b[None, :, None, None]
    return y


def signs(a):
    return numpy.where(a >= 0, 1, -1).astype(numpy.float32)


GEOMETRIES = [(1, 0), (2, 1), ((2, 1), (1, 2)), (3, 2)]


@pytest.mark.parametrize('stride,pad', GEOMETRIES)
def test_binarized_forward_is_the_definition_exactly(stride, pad):
    x, W, b = make()
    y = quantized_convolution_2d(x, W, None, stride, pad, 'sign', 'sign',
                                 'none').array
    # Sums of +-1 products and zeros: integers, exact in float32.
    numpy.testing.assert_array_equal(
        y, reference_convolution(signs(x), signs(W), None, stride, pad))
    assert y.dtype == numpy.float32


@pytest.mark.parametrize('spec', ['seed', 'linear:2', 'log:4'])
def test_forward_convolves_the_quantized_operands(spec):
    x, W, b = make(seed=1)
    q = quantizers.parse(spec)
    y = quantized_convolution_2d(x, W, b, 1, 1, spec, spec, 'none').array
    numpy.testing.assert_allclose(
        y, reference_convolution(q(x), q(W), b, 1, 1), rtol=1e-5,
        atol=1e-6)


@pytest.mark.parametrize('stride,pad', GEOMETRIES)
def test_float_path_gradients(stride, pad):
    x, W, b = make(seed=2)
    y = quantized_convolution_2d(x, W, b, stride, pad, 'none', 'none',
                                 'none')
    gy = numpy.random.RandomState(3).randn(*y.shape).astype(numpy.float32)
    gradient_check.check_backward(
        lambda x, W, b: quantized_convolution_2d(x, W, b, stride, pad,
                                                 'none', 'none', 'none'),
        (x, W, b), gy, dtype=numpy.float64, atol=1e-3, rtol=1e-3)


def gradients(x, W, b, gy, stride, pad, **quants):
    vs = [chainer.Variable(a) for a in (x, W, b)]
    y = quantized_convolution_2d(*vs, stride=stride, pad=pad, **quants)
    y.grad = gy
    y.backward()
    return [v.grad for v in vs]


@pytest.mark.parametrize('stride,pad', GEOMETRIES)
def test_straight_through_is_the_float_backward_of_the_quantized(stride,
                                                                  pad):
    x, W, b = make(seed=4)
    y = quantized_convolution_2d(x, W, b, stride, pad)
    gy = (numpy.random.RandomState(5).randn(*y.shape) * 0.3).astype(
        numpy.float32)
    g = quantizers.parse('linear:2')
    quantized = gradients(x, W, b, gy, stride, pad, input_quant='sign',
                          weight_quant='sign', grad_quant='linear:2')
    # Chainer's own convolution on the quantized operands, with the
    # quantized output gradient: the same arrays, bit for bit; the bias
    # gets the output gradient itself.
    float_path = gradients(signs(x), signs(W), b, g(gy), stride, pad,
                           input_quant='none', weight_quant='none',
                           grad_quant='none')
    numpy.testing.assert_array_equal(quantized[0], float_path[0])
    numpy.testing.assert_array_equal(quantized[1], float_path[1])
    numpy.testing.assert_allclose(quantized[2], gy.sum(axis=(0, 2, 3)),
                                  rtol=1e-5)


def test_stochastic_backward_uses_the_forward_draw():
    x, W, b = make(seed=6)
    numpy.random.seed(0)
    xv, Wv = chainer.Variable(x), chainer.Variable(W)
    y = quantized_convolution_2d(xv, Wv, None, 1, 1, 'stochastic',
                                 'stochastic', 'none')
    gy = numpy.ones_like(y.array)
    y.grad = gy
    node = y.creator
    y.backward()
    # The gradients are those of the operands the forward drew.
    expected = gradients(node.xq, node.Wq, b, gy, 1, 1,
                         input_quant='none', weight_quant='none',
                         grad_quant='none')
    numpy.testing.assert_array_equal(xv.grad, expected[0])
    numpy.testing.assert_array_equal(Wv.grad, expected[1])


def test_without_bias():
    x, W, _ = make()
    y = quantized_convolution_2d(x, W, None, 1, 1, 'none', 'none', 'none')
    numpy.testing.assert_allclose(
        y.array, reference_convolution(x, W, None, 1, 1), rtol=1e-5,
        atol=1e-5)


@pytest.mark.parametrize('x_shape,w_shape,b_shape,dtype', [
    ((2, 3, 7, 6), (4, 2, 3, 3), (4,), numpy.float32),   # channels
    ((2, 3, 7), (4, 3, 3, 3), (4,), numpy.float32),      # x not 4-D
    ((2, 3, 7, 6), (4, 3, 3), (4,), numpy.float32),      # W not 4-D
    ((2, 3, 7, 6), (4, 3, 3, 3), (5,), numpy.float32),   # bias length
    ((2, 3, 7, 6), (4, 3, 3, 3), (4,), numpy.float64),   # dtype
])
def test_type_errors(x_shape, w_shape, b_shape, dtype):
    with pytest.raises(utils.type_check.InvalidType):
        quantized_convolution_2d(numpy.zeros(x_shape, dtype),
                                 numpy.zeros(w_shape, dtype),
                                 numpy.zeros(b_shape, dtype))


@pytest.mark.gpu
@pytest.mark.parametrize('spec', ['sign', 'seed', 'none'])
def test_gpu_equals_cpu(spec):
    import cupy
    x, W, b = make(n=8, c=16, h=12, w=12, m=32, kh=3, kw=3, seed=7)
    y = quantized_convolution_2d(x, W, b, 1, 1, spec, spec, spec)
    gy = (numpy.random.RandomState(8).randn(*y.shape) * 0.01).astype(
        numpy.float32)
    results = []
    for xp in (numpy, cupy):
        vs = [chainer.Variable(xp.asarray(a)) for a in (x, W, b)]
        y = quantized_convolution_2d(*vs, stride=1, pad=1, input_quant=spec,
                                     weight_quant=spec, grad_quant=spec)
        y.grad = xp.asarray(gy)
        y.backward()
        results.append([cupy.asnumpy(a) for a in
                        [y.array] + [v.grad for v in vs]])
    for cpu, gpu in zip(*results):
        # The same quantized operands; only the order of the sums differs
        # (cuDNN's against im2col's).
        numpy.testing.assert_allclose(cpu, gpu, rtol=1e-4, atol=1e-5)


# Kernels of 1, 3 and 5 and 2 x 3, strides and paddings of every kind,
# and channels enough for long sums, whose order sets their last bits.
CHAINER_CASES = [
    ((2, 20, 7, 6), (8, 3, 3), 1, 1),
    ((3, 1, 9, 8), (5, 5, 5), 2, 2),
    ((2, 7, 6, 9), (3, 1, 1), 1, 0),
    ((1, 9, 8, 7), (4, 2, 3), (2, 3), (0, 1)),
]


@pytest.mark.parametrize('x_shape,w_shape,stride,pad', CHAINER_CASES)
@pytest.mark.parametrize('gy_layout', ['contiguous', 'channels last'])
def test_forward_and_backward_are_chainers_bit_for_bit(x_shape, w_shape,
                                                       stride, pad,
                                                       gy_layout):
    rng = numpy.random.RandomState(7)
    x = rng.standard_normal(x_shape).astype(numpy.float32)
    W = rng.standard_normal((w_shape[0], x_shape[1]) + w_shape[1:]).astype(
        numpy.float32)
    b = rng.standard_normal(w_shape[0]).astype(numpy.float32)
    gy = rng.standard_normal(chainer.functions.convolution_2d(
        x, W, b, stride=stride, pad=pad).shape).astype(numpy.float32)
    if gy_layout == 'channels last':  # as a convolution's output lies
        gy = numpy.rollaxis(numpy.ascontiguousarray(numpy.moveaxis(
            gy, 1, 3)), 3, 1)
    results = []
    for convolution in (
            lambda *a: quantized_convolution_2d(*a, stride=stride, pad=pad,
                                                input_quant='none',
                                                weight_quant='none',
                                                grad_quant='none'),
            lambda *a: chainer.functions.convolution_2d(*a, stride=stride,
                                                        pad=pad)):
        xv, Wv, bv = (chainer.Variable(a.copy()) for a in (x, W, b))
        y = convolution(xv, Wv, bv)
        y.grad = gy
        y.backward()
        results.append((y.array, xv.grad, Wv.grad, bv.grad))
    for ours, theirs in zip(*results):
        assert ours.shape == theirs.shape and ours.strides == theirs.strides
        numpy.testing.assert_array_equal(ours.view(numpy.uint32),
                                         theirs.view(numpy.uint32))


def _filter_gradients(x_pair, W, backward_order):
    """The filters' gradients of two convolutions of the same geometry,
    one of each of ``x_pair``, both forwards before either backward (in
    ``backward_order``): the second forward's columns take the scratch
    array of the first's."""
    grads = {}
    Wvs = [chainer.Variable(W.copy()) for _ in x_pair]
    ys = [quantized_convolution_2d(x, Wv, stride=1, pad=1, input_quant='seed',
                                   weight_quant='seed', grad_quant='none')
          for x, Wv in zip(x_pair, Wvs)]
    for i in backward_order:
        chainer.functions.sum(ys[i] * ys[i]).backward()
        grads[i] = Wvs[i].grad
    return [grads[i] for i in range(len(x_pair))]


@pytest.mark.parametrize('backward_order', [(0, 1), (1, 0)])
def test_filter_gradient_uses_the_columns_of_its_own_input(backward_order):
    # Each filter gradient is the one its convolution alone gives, whether
    # its forward's columns were still there or made again.
    rng = numpy.random.RandomState(3)
    x_pair = [rng.standard_normal((2, 3, 6, 5)).astype(numpy.float32)
              for _ in range(2)]
    W = rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32)
    alone = [_filter_gradients([x], W, (0,))[0] for x in x_pair]
    for ours, expected in zip(_filter_gradients(x_pair, W, backward_order),
                              alone):
        numpy.testing.assert_array_equal(ours.view(numpy.uint32),
                                         expected.view(numpy.uint32))


def test_filter_gradient_takes_the_forward_columns(monkeypatch):
    # One forward and backward makes each layer's columns once.
    pytest.importorskip('numba')
    from quantized_net.training import columns
    made = []
    im2col = columns.im2col
    monkeypatch.setattr(columns, 'im2col',
                        lambda *a: made.append(a[0].shape) or im2col(*a))
    rng = numpy.random.RandomState(4)
    x = chainer.Variable(rng.standard_normal((2, 3, 6, 5)).astype(
        numpy.float32))
    W = chainer.Variable(rng.standard_normal((4, 3, 3, 3)).astype(
        numpy.float32))
    y = quantized_convolution_2d(x, W, pad=1)
    chainer.functions.sum(y).backward()
    assert made == [(2, 3, 6, 5)] and W.grad is not None
