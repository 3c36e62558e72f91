"""export.py: threshold folding against the model's own batch
normalisation and sign, and the script as a user runs it."""
import os
import subprocess
import sys

import chainer
import chainer.links as L
import numpy
import pytest

import conftest
from conftest import ROOT
import export
import packed_format
import presets

SCRIPT = os.path.join(ROOT, 'export.py')


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
    t, flip = export.fold_sign(bn, bias, lambda d: d.astype(numpy.float32),
                               -k, k)
    d = numpy.arange(-k, k + 1)[:, None]
    expected = model_fires(bn, d.astype(numpy.float32) + bias)
    numpy.testing.assert_array_equal((d >= t) != flip, expected)
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
    t, flip = export.fold_sign(bn, bias, pre, -255 * k, 255 * k)
    d = numpy.arange(-255 * k, 255 * k + 1)[:, None]
    expected = model_fires(bn, pre(d) + bias)
    numpy.testing.assert_array_equal((d >= t) != flip, expected)


def test_last_layer_logits_are_chainers_bit_for_bit():
    k = 256
    bn, bias = random_bn(10, 3, numpy.sqrt(k))
    last = export.last_layer(bn, bias)
    d = numpy.arange(-k, k + 1, 2)[:, None].repeat(10, axis=1)
    with chainer.using_config('train', False):
        expected = bn(d.astype(numpy.float32) + bias).array
    numpy.testing.assert_array_equal(
        packed_format.last_layer_logits(last, d), expected)


def test_export_describes_the_network():
    model, config = conftest.binarized_model(units=70, layers=3)
    network = export.export(model, config)
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
    with pytest.raises(export.ExportError) as e:
        export.check_binarized(presets.PRESETS['seed'])
    assert 'act_quant is \'seed\'' in str(e.value)
    assert 'weight_quant is \'seed\'' in str(e.value)


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True)


def test_script_writes_the_packed_file(tmp_path):
    result_dir = conftest.write_result(
        str(tmp_path / 'result'), *conftest.binarized_model(units=64))
    result = run(result_dir)
    assert result.returncode == 0, result.stderr
    path = os.path.join(result_dir, 'model.packed.npz')
    assert 'wrote {}'.format(path) in result.stdout
    assert '(32.0x smaller)' not in result.stdout  # 784 pads to 832 bits
    assert packed_format.load(path).sizes == [784, 64, 64, 10]


def test_script_errors_are_one_line(tmp_path):
    model, config = conftest.binarized_model(units=64)
    seed_dir = conftest.write_result(
        str(tmp_path / 'seed'), presets.build_classifier(
            dict(presets.PRESETS['seed'], unit=64)),
        dict(presets.PRESETS['seed'], unit=64))
    result = run(seed_dir)
    assert result.returncode == 1
    assert result.stderr.startswith('export.py: error: only a binarized')
    assert len(result.stderr.strip().splitlines()) == 1
    bnn_dir = conftest.write_result(str(tmp_path / 'bnn'), model, config)
    result = run(bnn_dir, '-o', str(tmp_path / 'no' / 'such' / 'x.npz'))
    assert result.returncode == 1
    assert 'does not exist' in result.stderr
    result = run(str(tmp_path / 'nothing'))
    assert result.returncode == 1 and 'args.json does not exist' in \
        result.stderr
