"""batch_normalization.py: the fused link gives Chainer's link's bits, in
training and after it, forward, backward and statistics."""
import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import batch_normalization
import chainer
import chainer.links as L

from helpers import (  # noqa: E402
    C_ORDER, CHANNELS_LAST, COLUMNS_FIRST, identical_bits, laid_out)

pytest.importorskip('numba')

# Batches of vectors and of images: one channel (NumPy then adds all the
# values pairwise), one value a channel an image, two images, odd sizes,
# images of more than 8 and 128 values (pairwise blocks) and of 10000
# (past NumPy's buffer of 8192).
SHAPES = [(100, 1000), (100, 10), (7, 1), (2, 3), (100, 16, 28, 28),
          (10, 4, 5, 5), (10, 1, 7, 7), (3, 5, 1, 1), (2, 3, 100, 100),
          (16, 8, 3, 3), (5, 2, 13, 11), (4, 3, 2, 4)]


def _links(channels, seed, still_unit=True, **options):
    """Chainer's link and the fused one, with the same parameters."""
    rng = numpy.random.RandomState(seed)
    gamma = rng.uniform(-2, 2, channels).astype(numpy.float32)
    if still_unit:
        gamma[0] = 0  # a unit whose output never varies
    beta = rng.uniform(-1, 1, channels).astype(numpy.float32)
    links = (L.BatchNormalization(channels, **options),
             batch_normalization.BatchNormalization(channels, **options))
    for link in links:
        link.gamma.array[:] = gamma
        link.beta.array[:] = beta
    return links


def _step(link, x, gy, **kwargs):
    """A training forward and backward of ``x`` and ``gy`` as they are
    laid out: the output, the gradients and the running statistics after
    it, and the output's and gradient's strides."""
    link.cleargrads()
    variable = chainer.Variable(x.copy(order='K'))
    y = link(variable, **kwargs)
    y.grad = gy.copy(order='K')
    y.backward()
    xp = chainer.backend.get_array_module(y.array)
    return [xp.ascontiguousarray(y.array),
            xp.ascontiguousarray(variable.grad), link.gamma.grad,
            link.beta.grad, link.avg_mean.copy(), link.avg_var.copy(),
            (y.array.strides, variable.grad.strides)]


#: The activations the link applies in its pass, as Chainer's functions.
ACTIVATIONS = [
    (batch_normalization.Relu(), chainer.functions.relu),
    (batch_normalization.HardTanh(-1., 1.),
     lambda y: chainer.functions.clip(y, -1., 1.)),
    (batch_normalization.HardTanh(0., 6.),
     lambda y: chainer.functions.clip(y, 0., 6.))]
ACTIVATION_IDS = ['relu', 'htanh', 'clip-0-6']


class _ThenChainers(chainer.Chain):
    """Chainer's link, then ``function``: what the link with an
    activation computes."""

    def __init__(self, link, function):
        super(_ThenChainers, self).__init__()
        with self.init_scope():
            self.link = link
        self.function = function

    def __getattr__(self, name):
        if name in ('gamma', 'beta', 'avg_mean', 'avg_var', 'N'):
            return getattr(self.link, name)
        return super(_ThenChainers, self).__getattr__(name)

    def forward(self, x, **kwargs):
        return self.function(self.link(x, **kwargs))


def _on_the_bounds(x, chainers, fused, values):
    """Channels after the first of ``x`` constant and their beta each of
    ``values`` in turn: the normalised values are beta itself, on an
    activation's bounds; the first channel's gamma is 0 (:func:`_links`):
    its normalised values are its beta too."""
    for c in range(1, x.shape[1]):
        x[:, c] = c
    for link in (chainers, fused):
        link.beta.array[:] = numpy.resize(numpy.float32(values),
                                          x.shape[1])


def _assert_same_bits(expected, actual):
    """The same arrays bit for bit, and the same anything else
    (strides)."""
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        if isinstance(e, numpy.ndarray):
            identical_bits(e, a)
        else:
            assert e == a


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('scale', [1e-3, 1., 1e3])
def test_training_steps_give_chainers_bits(shape, scale):
    rng = numpy.random.RandomState(sum(shape))
    chainers, fused = _links(shape[1], seed=len(shape), eps=1e-4)
    for _ in range(2):
        x = (rng.standard_normal(shape) * scale +
             rng.standard_normal()).astype(numpy.float32)
        gy = rng.standard_normal(shape).astype(numpy.float32)
        _assert_same_bits(_step(chainers, x, gy), _step(fused, x, gy))


LAYOUTS = [C_ORDER, CHANNELS_LAST, COLUMNS_FIRST]


@pytest.mark.parametrize('shape', [(100, 16, 28, 28), (5, 3, 7, 6),
                                   (4, 2, 1, 1), (6, 1, 5, 5)])
@pytest.mark.parametrize('x_layout', LAYOUTS)
@pytest.mark.parametrize('gy_layout', LAYOUTS)
def test_any_layout_gives_chainers_bits_and_layouts(shape, x_layout,
                                                    gy_layout):
    # NumPy adds in memory order, so its sums, and Chainer's, follow the
    # layout: the forward's x's, the backward's gy's.
    rng = numpy.random.RandomState(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(numpy.float32)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    x, gy = laid_out(x, x_layout), laid_out(gy, gy_layout)
    chainers, fused = _links(shape[1], seed=3)
    _assert_same_bits(_step(chainers, x, gy), _step(fused, x, gy))


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('activation,function', ACTIVATIONS,
                         ids=ACTIVATION_IDS)
def test_an_activation_in_the_pass_gives_chainers_bits(shape, activation,
                                                       function):
    rng = numpy.random.RandomState(sum(shape))
    chainers, fused = _links(shape[1], seed=len(shape), eps=1e-4)
    chainers = _ThenChainers(chainers, function)
    for scale in (1e-3, 1., 1e3):
        x = (rng.standard_normal(shape) * scale +
             rng.standard_normal()).astype(numpy.float32)
        gy = rng.standard_normal(shape).astype(numpy.float32)
        _assert_same_bits(_step(chainers, x, gy),
                          _step(fused, x, gy, activation=activation))
    # Normalised values exactly on the bounds (a mask includes both), at
    # 0 and -0, and just past them.
    x = rng.standard_normal(shape).astype(numpy.float32)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    for values in ([-1., 1., 0., -0.], [6., 6.5, -1.5, 1e-30]):
        _on_the_bounds(x, chainers, fused, values)
        _assert_same_bits(_step(chainers, x, gy),
                          _step(fused, x, gy, activation=activation))
    # Infinite and NaN gradients, which a mask's 0 turns into NaN: NaN
    # where Chainer's is (the sign of a NaN follows the order of the
    # operations on two NaNs, as in the link without an activation).
    gy.reshape(-1)[::3] = numpy.inf
    gy.reshape(-1)[1::7] = numpy.nan
    with numpy.errstate(invalid='ignore'):
        steps = (_step(chainers, x, gy),
                 _step(fused, x, gy, activation=activation))
    _assert_same_bits(*[[numpy.where(numpy.isnan(a), numpy.nan, a)
                         if isinstance(a, numpy.ndarray) else a for a in step]
                        for step in steps])


@pytest.mark.parametrize('x_layout', LAYOUTS)
@pytest.mark.parametrize('gy_layout', LAYOUTS)
@pytest.mark.parametrize('activation,function', ACTIVATIONS[:2],
                         ids=ACTIVATION_IDS[:2])
def test_an_activation_in_any_layout_gives_chainers_bits(
        x_layout, gy_layout, activation, function):
    rng = numpy.random.RandomState(8)
    shape = (5, 3, 7, 6)
    x = laid_out((rng.standard_normal(shape) * 2).astype(numpy.float32),
                 x_layout)
    gy = laid_out(rng.standard_normal(shape).astype(numpy.float32),
                  gy_layout)
    chainers, fused = _links(shape[1], seed=8)
    _assert_same_bits(_step(_ThenChainers(chainers, function), x, gy),
                      _step(fused, x, gy, activation=activation))


@pytest.mark.parametrize('activation,function', ACTIVATIONS,
                         ids=ACTIVATION_IDS)
def test_an_activation_in_the_pass_is_one_function(activation, function):
    x = numpy.random.RandomState(9).standard_normal((6, 4)).astype(
        numpy.float32)
    _, fused = _links(4, seed=9)
    y = fused(chainer.Variable(x), activation=activation)
    assert isinstance(y.creator, batch_normalization.NormalizedActivation)
    assert y.creator.inputs[0].creator is None
    # Where the link is Chainer's (here in evaluation), two functions.
    with chainer.using_config('train', False):
        y = fused(chainer.Variable(x), activation=activation)
    assert not isinstance(y.creator,
                          batch_normalization.NormalizedActivation)
    assert y.creator.inputs[0].creator is not None


@pytest.mark.parametrize('activation,function', ACTIVATIONS,
                         ids=ACTIVATION_IDS)
def test_a_second_order_gradient_through_an_activation_is_chainers(
        activation, function):
    rng = numpy.random.RandomState(10)
    x = rng.standard_normal((6, 4)).astype(numpy.float32) * 2
    grads = []
    chainers, fused = _links(4, seed=10, still_unit=False)
    for link, kwargs in ((_ThenChainers(chainers, function), {}),
                         (fused, {'activation': activation})):
        variable = chainer.Variable(x)
        y = link(variable, **kwargs)
        gx, = chainer.grad([chainer.functions.sum(y * y * y)], [variable],
                           enable_double_backprop=True)
        ggx, = chainer.grad([chainer.functions.sum(gx * gx)], [variable])
        grads.append([gx.array, ggx.array])
    assert numpy.count_nonzero(grads[0][1]) > 0
    _assert_same_bits(*grads)


def test_constant_channels_and_negative_zeros_give_chainers_bits():
    x = numpy.zeros((6, 3, 4, 4), numpy.float32)
    x[:, 0] = -0.
    x[:, 1] = 2.5
    x[:, 2, 1, 1] = 1.
    for inputs in (x, x[:, :, 1, 1]):
        gy = numpy.linspace(-1, 1, inputs.size).astype(
            numpy.float32).reshape(inputs.shape)
        chainers, fused = _links(3, seed=2)
        _assert_same_bits(_step(chainers, inputs, gy),
                          _step(fused, inputs, gy))


def test_finetuning_and_evaluation_give_chainers_bits():
    rng = numpy.random.RandomState(3)
    chainers, fused = _links(5, seed=3)
    for _ in range(3):
        x = rng.standard_normal((8, 5)).astype(numpy.float32)
        gy = rng.standard_normal((8, 5)).astype(numpy.float32)
        _assert_same_bits(_step(chainers, x, gy, finetune=True),
                          _step(fused, x, gy, finetune=True))
    assert fused.N == chainers.N == 3
    with chainer.using_config('train', False):
        _assert_same_bits([chainers(x).array], [fused(x).array])


def test_a_second_order_gradient_is_chainers():
    rng = numpy.random.RandomState(4)
    x = rng.standard_normal((6, 4)).astype(numpy.float32)
    grads = []
    for link in _links(4, seed=4, still_unit=False):
        variable = chainer.Variable(x)
        y = link(variable)
        gx, = chainer.grad([chainer.functions.sum(y * y)], [variable],
                           enable_double_backprop=True)
        ggx, = chainer.grad([chainer.functions.sum(gx * gx)], [variable])
        grads.append([gx.array, ggx.array])
    _assert_same_bits(*grads)


def test_what_it_does_not_fuse_is_chainers():
    rng = numpy.random.RandomState(5)
    x = rng.standard_normal((4, 3)).astype(numpy.float64)
    gy = rng.standard_normal((4, 3))
    chainers, fused = _links(3, seed=5, dtype=numpy.float64)
    assert not batch_normalization.fuses(x, fused.gamma.array, None)
    _assert_same_bits(_step(chainers, x, gy), _step(fused, x, gy))
    with pytest.raises(ValueError, match='test argument is not supported'):
        fused(x, test=True)


def test_which_inputs_it_fuses():
    fuses = batch_normalization.fuses
    gamma = numpy.ones(3, numpy.float32)
    assert fuses(numpy.ones((2, 3), numpy.float32), gamma, None)
    assert fuses(numpy.ones((2, 3, 4, 5), numpy.float32), gamma, (0, 2, 3))
    assert not fuses(numpy.ones((1, 3), numpy.float32), gamma, None)
    assert not fuses(numpy.ones((2, 3, 4), numpy.float32), gamma, None)
    assert not fuses(numpy.ones((2, 3, 4, 5), numpy.float32), gamma, (0,))
    assert not fuses(numpy.ones((2, 4), numpy.float32), gamma, None)
    assert not fuses(numpy.ones((2, 3), numpy.float16), gamma, None)


@pytest.mark.parametrize('n', list(range(0, 300)) + [1000, 4099])
def test_pairwise_sums_are_numpys(n):
    values = numpy.random.RandomState(n).standard_normal(n).astype(
        numpy.float32) * numpy.float32(1e4)
    leaves, joins = batch_normalization.pairwise_plan(n)
    partials = numpy.empty((2, len(leaves) + len(joins)), numpy.float32)
    # Values around the block that must not enter the sum.
    padded = numpy.concatenate([numpy.full(3, 7, numpy.float32), values,
                                numpy.full(5, 9, numpy.float32)])
    total, none = batch_normalization.value_sums(
        padded, padded, 3, leaves, joins, 0, partials)
    assert numpy.float32(total).view(numpy.uint32) == values.sum(
        dtype=numpy.float32).view(numpy.uint32)
    assert none == 0
    # Both sums of a pass: the values and the gradients, each NumPy's.
    grads = values[::-1].copy() * numpy.float32(1e-3)
    sums = batch_normalization.pair_sums(values, grads, 0, leaves, joins, 0,
                                         partials)
    assert [numpy.float32(t).view(numpy.uint32) for t in sums] == [
        a.sum(dtype=numpy.float32).view(numpy.uint32)
        for a in (values, grads)]


def test_a_pairwise_plan_is_numpys_recursion_unrolled():
    leaves, joins = batch_normalization.pairwise_plan(300)
    # 300 splits into 144 and 156; 144 into 72 and 72; 156 into 72 and 84.
    assert leaves.tolist() == [[0, 72], [72, 72], [144, 72], [216, 84]]
    assert joins.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert batch_normalization.pairwise_plan(128)[0].tolist() == [[0, 128]]
    assert batch_normalization.pairwise_plan(0)[0].tolist() == [[0, 0]]
    assert batch_normalization.pairwise_plan(300)[0] is leaves
    assert not leaves.flags.writeable


def test_it_saves_what_chainers_link_saves():
    saved = []
    for link in _links(7, seed=6):
        serializer = chainer.serializers.DictionarySerializer()
        serializer.save(link)
        saved.append(serializer.target)
    assert sorted(saved[0]) == sorted(saved[1])
    for name in saved[0]:
        numpy.testing.assert_array_equal(saved[0][name], saved[1][name])


@pytest.mark.gpu
@pytest.mark.parametrize('shape', [(100, 1000), (50, 16, 14, 14)])
def test_on_the_gpu_it_is_chainers_link_and_agrees_with_the_cpu(shape):
    # On the GPU the link is Chainer's (cuDNN where it applies), which
    # sums in another order: the two agree to float32 rounding.
    rng = numpy.random.RandomState(7)
    x = rng.standard_normal(shape).astype(numpy.float32)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    _, cpu = _links(shape[1], seed=7)
    _, gpu = _links(shape[1], seed=7)
    gpu.to_device('@cupy:0')
    expected = _step(cpu, x, gy)[:-1]  # the arrays, not the strides
    actual = [chainer.backends.cuda.to_cpu(a) for a in _step(
        gpu, chainer.backends.cuda.to_gpu(x),
        chainer.backends.cuda.to_gpu(gy))[:-1]]
    for e, a in zip(expected, actual):
        numpy.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
