"""engine.py: every engine classifies as the Chainer model does, on every
logit, on the CPU and the GPU; select picks them."""
import os

import chainer
import chainer.links as L
import numpy
import pytest

import helpers
from quantized_net.packed import engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed import reference
from quantized_net.packed.kernels import cpu_features
from quantized_net.training import mnist

needs_numba = pytest.mark.skipif(not cpu_features.HAVE_NUMBA,
                                 reason=cpu_features.NO_NUMBA)


def test_to_pixels():
    pixels = numpy.arange(256, dtype=numpy.uint8).reshape(1, 256)
    numpy.testing.assert_array_equal(engine.to_pixels(pixels, 256), pixels)
    as_mnist = pixels.astype(numpy.float32)
    as_mnist *= 1. / 255  # as chainer.datasets.get_mnist scales them
    numpy.testing.assert_array_equal(engine.to_pixels(as_mnist, 256),
                                     pixels)
    numpy.testing.assert_array_equal(
        engine.to_pixels(pixels.reshape(1, 16, 16), 256), pixels)
    for bad in (as_mnist + 0.5 / 255, as_mnist * 2, -as_mnist):
        with pytest.raises(ValueError, match='8-bit images'):
            engine.to_pixels(bad, 256)
    with pytest.raises(ValueError, match='do not hold 784 values'):
        engine.to_pixels(pixels, 784)


@pytest.fixture(scope='module')
def small():
    model, config = helpers.binarized_model(units=96, layers=3, seed=5)
    return model, packed_export.export(model, config)


def random_images(n, seed):
    images, _ = helpers.synthetic_digits(n, seed)
    return images.reshape(n, -1)


def test_select_picks_an_engine_per_kind_device_and_form(small):
    _, network = small
    blas = engine.select(network, kind='blas')
    assert type(blas) is engine.BlasEngine
    assert (blas.kind, blas.simd) == ('blas', None)
    if not cpu_features.HAVE_NUMBA:
        with pytest.raises(RuntimeError, match='need numba'):
            engine.select(network)
        return
    best = engine.select(network)
    assert type(best) is engine.CPU_ENGINES[cpu_features.best_form()]
    assert (best.kind, best.simd) == ('packed', cpu_features.best_form())
    for form in cpu_features.runnable_forms():
        assert engine.select(network, simd=form).simd == form
    assert type(engine.select(network, simd='scalar')) is \
        engine.PortableEngine
    with pytest.raises(ValueError, match='engine must be one of'):
        engine.select(network, kind='xnor')
    with pytest.raises(ValueError, match='simd chooses the kernels'):
        engine.select(network, kind='blas', simd='scalar')


def test_a_form_the_cpu_cannot_run_is_refused(small):
    _, network = small
    missing = [form for form in cpu_features.FORMS
               if form not in cpu_features.runnable_forms()]
    if not missing:
        pytest.skip('this CPU runs every form')
    with pytest.raises(ValueError, match='this CPU cannot run the {} '
                       'kernels'.format(missing[0])):
        engine.select(network, simd=missing[0])


@needs_numba
def test_packed_engine_classifies_as_the_chainer_model(small):
    model, network = small
    pixels = random_images(500, seed=7)
    expected = reference.chainer_labels(model, pixels, 100)
    assert len(set(expected.tolist())) > 3  # not a constant network
    for kind in engine.ENGINES:
        labels = engine.select(network, kind=kind).classify(pixels)
        numpy.testing.assert_array_equal(labels, expected)


@needs_numba
@pytest.mark.parametrize('simd', cpu_features.runnable_forms())
def test_every_form_gives_the_blas_logits(small, simd):
    # Unequal layer sizes (784-96-96-96-10): each layer's bit counts and
    # widths are its own.
    _, network = small
    pixels = random_images(300, seed=9)
    packed = engine.select(network, simd=simd)
    blas = engine.select(network, kind='blas')
    for batch in (pixels, pixels[:1], pixels[:17], pixels[:0]):
        numpy.testing.assert_array_equal(packed.logits(batch),
                                         blas.logits(batch))
    numpy.testing.assert_array_equal(packed.logits(pixels[:1]),
                                     packed.logits(pixels)[:1])


@needs_numba
@pytest.mark.parametrize('simd', cpu_features.runnable_forms())
def test_the_layers_chained_are_the_compiled_network(small, simd):
    _, network = small
    pixels = random_images(40, seed=10)
    packed = engine.select(network, simd=simd)
    for batch in (pixels, pixels[:1]):
        h = batch
        for layer in packed.layers():
            h = layer(h)
        numpy.testing.assert_array_equal(h, packed.dots(batch))


@pytest.mark.gpu
def test_gpu_engine_equals_cpu_engine(small):
    _, network = small
    pixels = random_images(300, seed=9)
    # The CPU's blas engine, which needs no numba (a GPU machine may lack
    # it), computes the same logits as its packed ones (tested above).
    cpu = engine.select(network, kind='blas').logits(pixels)
    device = chainer.get_device('@cupy:0')
    assert type(engine.select(network, device)) is engine.GpuEngine
    for kind in engine.ENGINES:
        gpu = engine.select(network, device, kind)
        numpy.testing.assert_array_equal(gpu.logits(pixels), cpu)
        numpy.testing.assert_array_equal(gpu.logits(pixels[:0]), cpu[:0])


def test_weight_bytes_are_what_each_engine_reads(small):
    _, network = small
    sizes = network.sizes
    assert engine.select(network, kind='blas').weight_bytes() == 4 * sum(
        k * n for k, n in zip(sizes, sizes[1:]))
    if cpu_features.HAVE_NUMBA:
        assert engine.select(network).weight_bytes() == \
            network.weight_bytes()


@pytest.mark.parametrize('compiled', [False, True])
def test_last_layer_logits_are_chainers_bit_for_bit(monkeypatch, compiled):
    if compiled and not engine.logits_kernel:
        pytest.skip(cpu_features.NO_NUMBA)
    if not compiled:
        monkeypatch.setattr(engine, 'logits_kernel', None)
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
    numpy.testing.assert_array_equal(engine.last_layer_logits(last, d),
                                     expected)


# The shipped models (docs/bnn.md), exported from 3 x 2048 bnn runs, and
# the test images their Chainer models classified correctly: 20 epochs,
# and 150 epochs at the best validation epoch (the paper's 1.40% row).
SHIPPED = [(os.path.join(helpers.ROOT, 'docs', 'bnn',
                         packed_format.PACKED_FILE), 9755),
           (os.path.join(helpers.ROOT, 'docs', 'bnn-paper',
                         packed_format.PACKED_FILE), 9867)]


@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='needs real MNIST (set MNIST_DIR)')
@pytest.mark.parametrize('path,correct', SHIPPED,
                         ids=['bnn 20 epochs', 'bnn 150 epochs'])
def test_shipped_mnist_networks_match_their_trained_models(path, correct):
    network = packed_format.load(path)
    _, (pixels, labels) = mnist.read_mnist(os.environ['MNIST_DIR'])
    kind = 'packed' if cpu_features.HAVE_NUMBA else 'blas'
    assert (engine.select(network, kind=kind).classify(pixels) ==
            labels).sum() == correct
