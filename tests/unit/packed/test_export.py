"""Folding a trained binarized model into a packed network: thresholds
against the model's own batch normalisation and sign, for every integer."""
import chainer
import chainer.links as L
import numpy
import pytest

import helpers
from quantized_net.packed import export as packed_export
from quantized_net.packed.format import unit_fires
from quantized_net.training import presets
from quantized_net import errors


def model_fires(bn, y):
    """sign(clip(BN(y))) == +1, as the Chainer model computes it."""
    with chainer.using_config('train', False):
        return bn(y).array >= 0


def random_bn(n, seed, scale):
    bn = L.BatchNormalization(n, eps=1e-4)
    rng = numpy.random.RandomState(seed)
    bn.avg_mean[...] = rng.normal(0, scale, n)
    bn.avg_var[...] = rng.uniform(0.01, 2, n) * scale ** 2
    bn.gamma.array[...] = rng.normal(0, 1, n)
    bn.gamma.array[:2] = (0., -2.)  # a constant unit, a reversed one
    bn.beta.array[...] = rng.normal(0, 1, n)
    bn.beta.array[0] = -0.1
    return bn, rng.normal(0, scale, n).astype(numpy.float32)


@pytest.mark.parametrize('k', [1, 9, 64, 200])
def test_hidden_thresholds_equal_bn_and_sign_for_every_dot(k):
    bn, bias = random_bn(40, k, numpy.sqrt(k))
    t, flip = packed_export.fold_sign(
        bn, bias, lambda d: d.astype(numpy.float32), -k, k)
    d = numpy.arange(-k, k + 1)[:, None]
    expected = model_fires(bn, d.astype(numpy.float32) + bias)
    numpy.testing.assert_array_equal(unit_fires(d, t, flip), expected)
    assert flip[0] == (bn.beta.array[0] >= 0)  # gamma 0: the sign of beta
    # gamma < 0 reverses the order: the unit fires below its threshold.
    assert (numpy.diff(expected[:, 1].astype(int)) <= 0).all()


def test_first_layer_thresholds_on_pixel_dots():
    k = 12
    signs = numpy.random.RandomState(0).choice([-1., 1.], (30, k))
    scale, offset = 2. / 255, -1.
    sums = signs.sum(axis=1)
    bn, bias = random_bn(30, 1, numpy.sqrt(k))

    def pre(d):
        return (scale * d + offset * sums).astype(numpy.float32)
    t, flip = packed_export.fold_sign(bn, bias, pre, -255 * k, 255 * k)
    d = numpy.arange(-255 * k, 255 * k + 1)[:, None]
    expected = model_fires(bn, pre(d) + bias)
    numpy.testing.assert_array_equal(unit_fires(d, t, flip), expected)


def test_export_describes_the_network():
    model, config = helpers.binarized_model(units=70, layers=3)
    network = packed_export.export(model, config)
    assert network.sizes == [784, 70, 70, 70, 10]
    assert network.meta['input'] == {'pixels': '8-bit, 0-255',
                                     'scale': 2 / 255, 'offset': -1.0}
    assert network.meta['quantizers'] == {
        'input_quant': 'none', 'weight_quant': 'sign', 'act_quant': 'sign'}
    for layer, link in enumerate(model.predictor.linear_layers()):
        numpy.testing.assert_array_equal(
            network.signs(layer), numpy.where(link.W.array >= 0, 1, -1))
    assert network.weight_bytes() == 8 * (70 * 13 + 2 * 70 * 2 + 10 * 2)


def test_export_refuses_a_network_that_is_not_binary():
    with pytest.raises(errors.ExportError) as e:
        packed_export.check_binarized(presets.PRESETS['seed'])
    assert 'act_quant is \'seed\'' in str(e.value)
    assert 'weight_quant is \'seed\'' in str(e.value)


@pytest.mark.parametrize('spec', ['linear:1', 'stochastic'])
def test_quantizers_that_are_sign_at_test_time_export_as_sign(spec):
    model, config = helpers.binarized_model(units=70)
    reference = packed_export.export(model, config)
    same = dict(config, weight_quant=spec, act_quant=spec)
    network = packed_export.export(model, same)
    for ours, theirs in zip(network.weights + network.thresholds
                            + network.flips,
                            reference.weights + reference.thresholds
                            + reference.flips):
        numpy.testing.assert_array_equal(ours, theirs)
    assert network.meta['quantizers']['weight_quant'] == spec


@pytest.mark.parametrize('key,value', [
    ('weight_quant', 'linear:2'), ('act_quant', 'log:2'),
    ('input_quant', 'sign'), ('activation', 'relu'),
    ('weight_quant', 'no such spec')])
def test_export_refuses_each_non_binary_part(key, value):
    config = dict(presets.PRESETS['bnn'], **{key: value})
    with pytest.raises(errors.ExportError) as e:
        packed_export.check_binarized(config)
    assert str(e.value).endswith('this one has {} is {!r}.'.format(
        key, value))


def test_fingerprint_is_the_sha256_of_the_model_file(tmp_path):
    import hashlib
    import os
    path = tmp_path / 'model.npz'
    path.write_bytes(b'any bytes' * 100000)
    assert packed_export.fingerprint(str(path)) == hashlib.sha256(
        b'any bytes' * 100000).hexdigest()
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    with pytest.raises(errors.ResultError) as e:
        packed_export.fingerprint(fifo)
    assert str(e.value) == '{} is a FIFO, not a regular file; give a ' \
        'file.'.format(fifo)


def test_export_records_the_source_it_is_given():
    model, config = helpers.binarized_model(units=24)
    assert packed_export.export(model, config, 'ab' * 32).meta[
        'source'] == 'ab' * 32
    assert 'source' not in packed_export.export(model, config).meta


def test_first_convolution_thresholds_on_the_pixel_integers():
    # sum w (2p - 255) over 9 taps: the network's input times 255, every
    # integer the layer can produce, the fold evaluated as export folds it.
    k = 9
    bn, bias = random_bn(30, 2, numpy.sqrt(k))

    def pre(d):
        return (d / 255).astype(numpy.float32)
    t, flip = packed_export.fold_sign(bn, bias, pre, -255 * k, 255 * k)
    d = numpy.arange(-255 * k, 255 * k + 1)[:, None]
    expected = model_fires(bn, pre(d) + bias)
    numpy.testing.assert_array_equal(unit_fires(d, t, flip), expected)


def test_a_convnets_folds_are_its_links_own():
    model, config = helpers.binarized_convnet('5C3-P2-7C3-9FC')
    network = packed_export.export(model, config)
    layers = model.predictor.layers()
    # The second convolution: 5 channels x 9 taps, every reachable sum.
    link, bn, _ = layers[1]
    k = 45
    d = numpy.arange(-k, k + 1)
    y = (d[:, None].astype(numpy.float32) + link.b.array)[:, :, None, None]
    numpy.testing.assert_array_equal(
        unit_fires(d[:, None], network.thresholds[1], network.flips[1]),
        model_fires(bn, y)[:, :, 0, 0])
