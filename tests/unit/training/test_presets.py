import math

import numpy
import pytest

import chainer
import chainer.functions as F

from helpers import train_steps
from function_quantized_linear import quantized_linear
from quantized_net.training import datasets
from quantized_net.training import presets
from qst import qst
from quantized_net.quantization import quantizers


def config(name, **changes):
    return dict(presets.PRESETS[name], preset=name, **changes)


def batch(n=16, seed=0):
    rng = numpy.random.RandomState(seed)
    return (rng.rand(n, 784).astype(numpy.float32),
            rng.randint(0, 10, n).astype(numpy.int32))


def forward_and_grads(model, forward, x):
    model.cleargrads()
    y = forward(x)
    F.sum(y * numpy.linspace(-1, 1, 10, dtype=numpy.float32)).backward()
    return y.array, {n: p.grad.copy() for n, p in model.namedparams()}


def original_forward(p, x):
    """The original suite, spelled out: every linear layer quantizes its
    input, weight and output gradient with the original's quantizer."""
    h = F.relu(qst(p.b1(quantized_linear(x, p.l1.W, p.l1.b))))
    h = F.relu(qst(p.b2(quantized_linear(h, p.l2.W, p.l2.b))))
    return p.b3(quantized_linear(h, p.l3.W, p.l3.b))


def test_seed_preset_is_the_original_network():
    numpy.random.seed(0)
    model = presets.build_classifier(config('seed', unit=64))
    p = model.predictor
    x, _ = batch()
    y1, g1 = forward_and_grads(p, p, x)
    y2, g2 = forward_and_grads(p, lambda v: original_forward(p, v), x)
    numpy.testing.assert_array_equal(y1, y2)
    for name in g1:
        numpy.testing.assert_array_equal(g1[name], g2[name], err_msg=name)
    assert model.lossfun is F.softmax_cross_entropy


def test_float_preset_is_a_plain_mlp():
    numpy.random.seed(0)
    model = presets.build_classifier(config('float', unit=64))
    p = model.predictor
    x, _ = batch()

    def plain(v):
        h = F.relu(p.b1(F.linear(v, p.l1.W, p.l1.b)))
        h = F.relu(p.b2(F.linear(h, p.l2.W, p.l2.b)))
        return p.b3(F.linear(h, p.l3.W, p.l3.b))
    y1, g1 = forward_and_grads(p, p, x)
    y2, g2 = forward_and_grads(p, plain, x)
    numpy.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for name in g1:
        numpy.testing.assert_allclose(g1[name], g2[name], rtol=1e-4,
                                      atol=1e-6, err_msg=name)


def test_bnn_preset_structure():
    numpy.random.seed(0)
    cfg = config('bnn', unit=32)
    model = presets.build_classifier(cfg)
    p = model.predictor
    links = p.linear_layers()
    assert [link.W.shape for link in links] == [
        (32, 784), (32, 32), (32, 32), (10, 32)]
    for link in links:
        assert link.weight_quant.spec == 'sign'
        assert link.grad_quant.spec == 'none'
        assert -1 <= link.W.array.min() and link.W.array.max() <= 1
        assert link.W.array.std() > 0.5  # U(-1, 1), std 0.577
    assert links[0].input_quant.spec == 'none'
    assert p.act_quant.spec == 'sign' and p.activation == 'htanh'
    assert (p.input_dropout, p.dropout) == (0.2, 0.5)
    assert p.centered_input
    assert p.b1.eps == 1e-4 and p.b1.decay == 0.9
    assert model.lossfun is presets.squared_hinge
    x, t = batch()
    with chainer.using_config('train', False):
        h = p.b1(p.l1(x * 2 - 1))
        hidden = qst(F.clip(h, -1., 1.), 'sign')
    assert set(numpy.unique(hidden.array)) <= {-1.0, 1.0}
    assert cfg['validation'] == 10000 and cfg['epoch'] == 1000


def clipped(model, optimizer):
    """The kinds of parameters (``W``, ``b``, ...) that an update clips:
    each set to 5 with a zero gradient, which Adam leaves as it is."""
    for param in model.params():
        param.array[...] = 5
        param.grad = numpy.zeros_like(param.array)
    optimizer.update()
    kinds = {param.name: set() for param in model.params()}
    for param in model.params():
        kinds[param.name].add(float(param.array.max()))
    assert all(len(values) == 1 and values <= {1.0, 5.0}
               for values in kinds.values()), kinds
    return {name for name, values in kinds.items() if values == {1.0}}


def test_bnn_optimizer_scales_weight_steps_and_clips_only_weights():
    numpy.random.seed(0)
    cfg = config('bnn', unit=32)
    model = presets.build_classifier(cfg)
    optimizer = presets.build_optimizer(model, cfg)
    for link in model.predictor.linear_layers():
        out_size, in_size = link.W.shape
        assert link.W.update_rule.hyperparam.eta == pytest.approx(
            math.sqrt((in_size + out_size) / 1.5))
        assert link.b.update_rule.hyperparam.eta == 1.0
    assert optimizer.alpha == 0.003
    assert clipped(model, optimizer) == {'W'}


def test_seed_optimizer_clips_everything_with_adam_defaults():
    model = presets.build_classifier(config('seed', unit=8))
    optimizer = presets.build_optimizer(model, config('seed'))
    assert optimizer.alpha == 0.001
    assert clipped(model, optimizer) == {'W', 'b', 'gamma', 'beta'}


def test_lr_decay_reaches_the_final_rate_at_the_last_epoch():
    cfg = config('bnn', epoch=50)
    rate = presets.lr_decay_rate(cfg)
    assert cfg['lr'] * rate ** 50 == pytest.approx(3e-7)
    assert presets.lr_decay_rate(config('seed')) is None


def test_squared_hinge():
    y = numpy.array([[2.0, -0.5, 0.3]], numpy.float32)
    t = numpy.array([0], numpy.int32)
    # true class: max(0, 1-2)^2 = 0; others: (1-0.5)^2, (1+0.3)^2
    assert float(presets.squared_hinge(y, t).array) == pytest.approx(
        (0 + 0.25 + 1.69) / 3)


@pytest.mark.parametrize('name', sorted(presets.PRESETS))
def test_presets_learn_a_batch(name):
    numpy.random.seed(0)
    cfg = config(name, unit=64, input_dropout=0.0, dropout=0.0)
    steps = 15
    if 'architecture' in cfg:  # a ConvNet: an eighth as wide, at its
        cfg['width'] = 0.125   # alpha (a third of bnn's for two of them)
        steps = 40
    model = presets.build_classifier(cfg)
    optimizer = presets.build_optimizer(model, cfg)
    x, t = batch(64)
    x = numpy.random.RandomState(1).rand(64, *datasets.image_shape(
        cfg)).astype(numpy.float32)
    losses = train_steps(model, optimizer, x, t, steps=steps)
    assert losses[-1] < 0.8 * losses[0]


def test_quantizer_specs_are_kept():
    cfg = config('float', weight_quant='linear:2', act_quant='log:4',
                 grad_quant='log:6', unit=8)
    p = presets.build_classifier(cfg).predictor
    assert [link.weight_quant.spec for link in p.linear_layers()] == \
        ['linear:2'] * 3
    assert p.act_quant.spec == 'log:4'
    assert isinstance(p.l2.grad_quant, quantizers.Log)
    # Each spec is parsed once: every layer shares the quantizer object.
    assert p.l1.weight_quant is p.l2.weight_quant is p.l3.weight_quant
    assert p.l1.grad_quant is p.l3.grad_quant


@pytest.mark.parametrize('changes,message', [
    (dict(unit=10 ** 9), 'unit is 1000000000; it must be an integer from 1 '
                         'to 8192'),
    (dict(unit=True), 'unit is True; it must be an integer'),
    (dict(activation='tanh'), "activation is 'tanh'; it must be one of"),
    (dict(weight_quant='ternary'), "weight_quant: invalid quantizer"),
    (dict(lr=float('inf')), 'lr is inf; it must be a finite positive'),
    (dict(dropout=1), 'dropout is 1; it must be a ratio in [0, 1)'),
    (dict(centered_input=1), 'centered_input is 1; it must be true or'),
    (dict(clip='none'), "clip is 'none'; it must be one of")])
def test_check_config_names_what_is_wrong(changes, message):
    presets.check_config(config('seed'))
    with pytest.raises(ValueError) as e:
        presets.check_config(config('seed', **changes))
    assert message in str(e.value)
    incomplete = config('seed')
    del incomplete['loss']
    with pytest.raises(ValueError, match='it lacks loss'):
        presets.check_config(incomplete)


@pytest.mark.parametrize('name,unit,layers', [
    ('seed', 16, 1), ('seed', 24, 2), ('bnn', 40, 3), ('float', 7, 5)])
def test_the_parameter_count_is_the_built_models(name, unit, layers):
    described = config(name, unit=unit, layers=layers)
    model = presets.build_classifier(described)
    assert presets.parameter_count(described) == model.count_params()
    assert presets.layer_shapes(described) == [
        link.W.shape for link in model.predictor.linear_layers()]


@pytest.mark.parametrize('changes', [
    dict(width=0.25), dict(width=0.1, architecture='cifar10'),
    dict(width=0.1, architecture='svhn'),
    dict(architecture='8C5-P2-16C3-P2', width=1),
    dict(architecture='8C3-8C3-P2-32FC-16FC', width=0.5)])
def test_the_parameter_count_of_a_convnet_is_the_built_models(changes):
    described = config('bnn-conv', **changes)
    model = presets.build_classifier(described)
    assert isinstance(model.predictor, presets.net.ConvNet)
    assert presets.parameter_count(described) == model.count_params()
    assert presets.layer_shapes(described) == [
        link.W.shape for link in model.predictor.weight_layers()]


def test_width_scales_the_units_of_an_mlp():
    described = config('bnn', unit=100, layers=2, width=0.5)
    assert [link.W.shape for link in presets.build_classifier(
        described).predictor.weight_layers()] == [(50, 784), (50, 50),
                                                  (10, 50)]


def test_a_configuration_recorded_before_width_and_architecture():
    recorded = config('seed')
    assert 'width' not in recorded and 'architecture' not in recorded
    presets.check_config(recorded)
    # The same run as one that says width 1 and no architecture.
    assert presets.differences(recorded, dict(
        recorded, width=1.0, architecture=None)) == []
    assert presets.differences(recorded, dict(recorded, width=2)) == [
        'width']


def test_a_configuration_recorded_before_bn_batches_keeps_the_averages():
    recorded = config('bnn')
    assert 'bn_batches' not in recorded
    presets.check_config(recorded)
    assert presets.differences(recorded, dict(recorded, bn_batches=0)) == []
    assert presets.differences(recorded, dict(recorded, bn_batches=5)) == [
        'bn_batches']
    # The ConvNets recompute the statistics.
    assert [presets.PRESETS[name]['bn_batches'] for name in (
        'bnn-conv', 'cifar10', 'svhn')] == [50, 50, 50]


@pytest.mark.parametrize('changes,message', [
    (dict(bn_batches=-1), 'bn_batches is -1; it must be an integer from 0 '
     'to 1000000'),
    (dict(bn_batches=2.0), 'bn_batches is 2.0; it must be an integer from '
     '0 to 1000000'),
    (dict(bn_batches=True), 'bn_batches is True; it must be an integer '
     'from 0 to 1000000'),
    (dict(width=0), 'width is 0; it must be a number in (0, 64]'),
    (dict(width=True), 'width is True; it must be a number in (0, 64]'),
    (dict(architecture=3), 'architecture is 3; it must be the name or the '
     'layers of a ConvNet'),
    (dict(architecture='8C3-P2-P2'), "architecture: '8C3-P2-P2' pools "
     "twice in a row"),
    (dict(architecture='P2-8C3'), "architecture: 'P2-8C3' does not start "
     "with a layer of weights"),
    (dict(architecture='8C3-P2-P2x'), "architecture: 'P2x' is not a layer "
     "(NCk, Pk or NFC)")])
def test_what_is_not_a_convnet_is_refused(changes, message):
    with pytest.raises(ValueError) as e:
        presets.check_config(config('bnn-conv', **changes))
    assert str(e.value) == message


def test_the_glorot_scale_of_a_convolution_counts_its_receptive_field():
    model = presets.build_classifier(config('bnn-conv', width=0.25))
    presets.build_optimizer(model, config('bnn-conv'))
    first, second = model.predictor.weight_layers()[:2]
    # 1 -> 16 filters of 3 x 3; 16 -> 16.
    assert first.W.update_rule.hyperparam.eta == pytest.approx(
        1 / math.sqrt(1.5 / ((1 + 16) * 9)))
    assert second.W.update_rule.hyperparam.eta == pytest.approx(
        1 / math.sqrt(1.5 / ((16 + 16) * 9)))


def test_a_configuration_too_large_is_refused_before_anything_is_built(
        monkeypatch):
    built = []
    monkeypatch.setattr(presets.net, 'MnistMLP',
                        lambda *a, **k: built.append(a))
    presets.check_config(config('bnn'))  # the paper's 3 x 4096
    presets.check_config(config('seed', unit=8192, layers=4))
    with pytest.raises(ValueError) as e:
        presets.check_config(config('seed', unit=8192, layers=32))
    assert str(e.value) == (
        'a network of 32 x 8192 units has 2087665694 parameters, more than '
        '268435456 (what 1 GiB of float32 holds); give fewer --unit or '
        '--layers, or a smaller --width')
    assert built == []
    # A ConvNet is counted from its layers: the paper's CIFAR-10 one, 8
    # times as wide, is beyond the bound.
    presets.check_config(config('bnn-conv', architecture='cifar10'))
    with pytest.raises(ValueError) as e:
        presets.check_config(config('bnn-conv', architecture='cifar10',
                                    width=8))
    assert str(e.value).startswith(
        'a network of 128C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-1024FC-'
        '1024FC has ')


def test_differences_are_the_keys_either_side_changes():
    seed, bnn = config('seed'), config('bnn')
    assert presets.differences(seed, dict(seed)) == []
    assert presets.differences(seed, dict(seed, epoch=3)) == ['epoch']
    assert presets.differences(seed, dict(seed, epoch=3),
                               ignore=('epoch',)) == []
    lacking = dict(seed)
    del lacking['unit']
    assert presets.differences(lacking, seed) == ['unit']
    # A key one lacks differs from any value but None.
    assert presets.differences(seed, {}) == sorted(
        key for key, value in seed.items() if value is not None)
    assert 'weight_quant' in presets.differences(seed, bnn)
