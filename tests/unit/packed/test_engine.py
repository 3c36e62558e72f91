"""The packed engines classify as the Chainer model does, on every logit,
on the CPU and the GPU."""
import os

import chainer
import chainer.links as L
import numpy
import pytest

import helpers
from quantized_net.training import mnist as mnist_dataset
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import simd_layers
from quantized_net.packed.kernels import xnor_popcount

PACKED_MNIST = os.path.join(helpers.ROOT, 'docs', 'bnn',
                            packed_format.PACKED_FILE)


def test_to_pixels():
    pixels = numpy.arange(256, dtype=numpy.uint8).reshape(1, 256)
    numpy.testing.assert_array_equal(packed_engine.to_pixels(pixels, 256),
                                     pixels)
    as_mnist = pixels.astype(numpy.float32)
    as_mnist *= 1. / 255  # as chainer.datasets.get_mnist scales them
    numpy.testing.assert_array_equal(
        packed_engine.to_pixels(as_mnist, 256), pixels)
    numpy.testing.assert_array_equal(
        packed_engine.to_pixels(pixels.reshape(1, 16, 16), 256), pixels)
    for bad in (as_mnist + 0.5 / 255, as_mnist * 2, -as_mnist):
        with pytest.raises(ValueError, match='8-bit images'):
            packed_engine.to_pixels(bad, 256)
    with pytest.raises(ValueError, match='do not hold 784 values'):
        packed_engine.to_pixels(pixels, 784)


@pytest.fixture(scope='module')
def small():
    model, config = helpers.binarized_model(units=96, layers=3, seed=5)
    return model, packed_export.export(model, config)


def random_images(n, seed):
    images, _ = helpers.synthetic_digits(n, seed)
    return images.reshape(n, -1)


def test_packed_engine_classifies_as_the_chainer_model(small):
    model, network = small
    pixels = random_images(500, seed=7)
    expected = packed_engine.chainer_labels(model, pixels, 100)
    assert len(set(expected.tolist())) > 3  # not a constant network
    for engine in packed_engine.ENGINES:
        labels = packed_engine.Engine(network, engine).classify(pixels)
        numpy.testing.assert_array_equal(labels, expected)


def test_engines_agree_on_every_logit(small):
    _, network = small
    pixels = random_images(300, seed=8)
    packed = packed_engine.Engine(network, 'packed')
    blas = packed_engine.Engine(network, 'blas')
    numpy.testing.assert_array_equal(packed.logits(pixels),
                                     blas.logits(pixels))
    numpy.testing.assert_array_equal(packed.logits(pixels[:1]),
                                     packed.logits(pixels)[:1])


@pytest.mark.parametrize('simd', simd_layers.runnable_forms())
def test_simd_kernels_give_the_scalar_logits(small, simd):
    # Unequal layer sizes (784-96-96-96-10): each layer's bit counts and
    # widths are its own.
    pytest.importorskip('numba')
    _, network = small
    pixels = random_images(300, seed=9)
    scalar = packed_engine.Engine(network, 'packed', simd='scalar')
    vector = packed_engine.Engine(network, 'packed', simd=simd)
    assert vector.simd == simd
    for batch in (pixels, pixels[:1], pixels[:17]):
        numpy.testing.assert_array_equal(vector.logits(batch),
                                         scalar.logits(batch))


def test_a_form_the_cpu_cannot_run_is_refused(small):
    _, network = small
    missing = [form for form in simd_layers.FORMS
               if form not in simd_layers.runnable_forms()]
    if not missing:
        pytest.skip('this CPU runs every form')
    with pytest.raises(ValueError, match='this CPU cannot run the {} '
                       'kernels'.format(missing[0])):
        packed_engine.Engine(network, 'packed', simd=missing[0])


@pytest.mark.gpu
def test_gpu_engine_equals_cpu_engine(small):
    _, network = small
    pixels = random_images(300, seed=9)
    # The CPU's blas engine, which needs no numba (a GPU machine may lack
    # it), computes the same logits as its packed one (tested above).
    cpu = packed_engine.Engine(network, 'blas').logits(pixels)
    for engine in packed_engine.ENGINES:
        gpu = packed_engine.Engine(network, engine,
                                   chainer.get_device('@cupy:0'))
        numpy.testing.assert_array_equal(gpu.logits(pixels), cpu)


@pytest.mark.parametrize('compiled', [False, True])
def test_last_layer_logits_are_chainers_bit_for_bit(monkeypatch, compiled):
    if compiled and not packed_engine._compiled_logits:
        pytest.skip(xnor_popcount.NO_NUMBA)
    if not compiled:
        monkeypatch.setattr(packed_engine, '_compiled_logits', None)
    k = 256
    bn = L.BatchNormalization(10, eps=1e-4)
    rng = numpy.random.RandomState(3)
    bn.avg_mean[...] = rng.normal(0, 16, 10)
    bn.avg_var[...] = rng.uniform(0.01, 2, 10) * k
    bn.gamma.array[...] = rng.normal(0, 1, 10)
    bn.beta.array[...] = rng.normal(0, 1, 10)
    bias = rng.normal(0, 16, 10).astype(numpy.float32)
    last = packed_export.last_layer(bn, bias)
    d = numpy.arange(-k, k + 1, 2)[:, None].repeat(10, axis=1)
    with chainer.using_config('train', False):
        expected = bn(d.astype(numpy.float32) + bias).array
    numpy.testing.assert_array_equal(
        packed_engine.last_layer_logits(last, d), expected)


# The shipped models (docs/bnn.md), exported from 3 x 2048 bnn runs, and
# the test images their Chainer models classified correctly: 20 epochs,
# and 150 epochs at the best validation epoch (the paper's 1.40% row).
SHIPPED = [(PACKED_MNIST, 9755),
           (os.path.join(helpers.ROOT, 'docs', 'bnn-paper',
                         'model.packed.npz'), 9867)]


@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='needs real MNIST (set MNIST_DIR)')
@pytest.mark.parametrize('path,correct', SHIPPED,
                         ids=['bnn 20 epochs', 'bnn 150 epochs'])
def test_shipped_mnist_networks_match_their_trained_models(path, correct):
    network = packed_format.load(path)
    _, test = mnist_dataset.get_mnist(os.environ['MNIST_DIR'])
    x, t = test._datasets
    labels = packed_engine.Engine(network).classify(x)
    assert (labels == t).sum() == correct
