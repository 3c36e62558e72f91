"""fused_adam.py: the same bits as Chainer's Adam, in one fused update."""
import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import fused_adam
import chainer
import chainer.links as L

from weight_clip import WeightClip

pytest.importorskip('numba')


def _train(optimizer_class, dtype, steps=5, hook=None, **hyperparams):
    """Parameters and moments after ``steps`` updates of a small linear
    link on fixed random gradients, with the optimizer hook ``hook``."""
    numpy.random.seed(0)
    link = L.Linear(37, 29)
    link.to_device('@numpy')
    for p in link.params():
        p.array = numpy.random.uniform(-1, 1, p.shape).astype(dtype)
    optimizer = optimizer_class(**hyperparams)
    optimizer.setup(link)
    if hook is not None:
        optimizer.add_hook(hook)
    link.W.update_rule.hyperparam.eta = 3.7
    rng = numpy.random.RandomState(1)
    for _ in range(steps):
        for p in link.params():
            # Tiny and huge gradients too: subnormal squares, large steps.
            p.grad = (rng.standard_normal(p.shape) *
                      10.0 ** rng.randint(-25, 3, p.shape)).astype(dtype)
        optimizer.update()
    return [(p.array, p.update_rule.state['m'], p.update_rule.state['v'])
            for p in link.params()]


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('hyperparams', [
    {}, {'alpha': 0.003, 'beta1': 0.5, 'eps': 1e-4},
    {'amsgrad': True}, {'weight_decay_rate': 0.01}])
def test_same_bits_as_chainer_adam(dtype, hyperparams):
    fused = _train(fused_adam.Adam, dtype, **hyperparams)
    reference = _train(chainer.optimizers.Adam, dtype, **hyperparams)
    for ours, theirs in zip(fused, reference):
        for a, b in zip(ours, theirs):
            assert a.dtype == dtype
            numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('clip', [
    {}, {'low': -0.5, 'high': 0.3}, {'param_names': ('W',)}])
@pytest.mark.parametrize('hyperparams', [
    {'alpha': 0.3}, {'alpha': 0.3, 'weight_decay_rate': 0.01}])
def test_clipping_in_the_pass_is_the_hooks(dtype, clip, hyperparams):
    # Large steps: many weights cross the bounds, on both sides.
    fused = _train(fused_adam.Adam, dtype, clip=WeightClip(**clip),
                   **hyperparams)
    reference = _train(chainer.optimizers.Adam, dtype,
                       hook=WeightClip(**clip), **hyperparams)
    unclipped = _train(fused_adam.Adam, dtype, **hyperparams)
    assert (numpy.abs(unclipped[0][0]) > 1).any()
    for ours, theirs in zip(fused, reference):
        for a, b in zip(ours, theirs):
            numpy.testing.assert_array_equal(a, b)


def test_a_nan_weight_stays_nan_as_numpy_clip_leaves_it():
    link = L.Linear(2, 1)
    optimizer = fused_adam.Adam(clip=WeightClip())
    optimizer.setup(link)
    link.W.array[...] = [[numpy.nan, 7.0]]
    link.cleargrads()
    link.W.grad = numpy.zeros_like(link.W.array)
    link.b.grad = numpy.zeros_like(link.b.array)
    optimizer.update()
    numpy.testing.assert_array_equal(link.W.array, [[numpy.nan, 1.0]])


def test_fused_update_is_the_one_taken():
    link = L.Linear(3, 2)
    optimizer = fused_adam.Adam()
    optimizer.setup(link)
    assert isinstance(link.W.update_rule, fused_adam.AdamRule)
    link.cleargrads()
    link.W.grad = numpy.ones_like(link.W.array)
    link.b.grad = numpy.ones_like(link.b.array)
    before = link.W.array.copy()
    optimizer.update()
    # The first step of Adam moves every weight by alpha, against g.
    numpy.testing.assert_allclose(before - link.W.array, 0.001, rtol=1e-4)
