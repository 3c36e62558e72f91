"""A binarized ConvNet packed: the export's layers and the BLAS engine's
labels and hidden layers against the Chainer model's, on random networks
of odd shapes."""
import os
import subprocess
import sys

import chainer
import chainer.functions as F
import numpy
import pytest

import helpers
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed import reference
from quantized_net.packed.kernels import cpu_features

# (architecture, image shape): channel counts not a multiple of 64 and
# some above, filters of 1, 3 and 5, pooling of odd sizes that drops a row.
NETWORKS = [
    ('5C3-P2-7C3-P2-9FC', (1, 28, 28)),
    ('3C5-P3-70C3-P2-11FC-6FC', (3, 17, 13)),
    ('66C3-2C1-P2-8FC', (2, 9, 7)),
    ('4C3-4C3-4FC', (1, 5, 6)),
]


def pixels_for(shape, n, seed):
    return numpy.random.RandomState(seed).randint(
        0, 256, (n,) + (int(numpy.prod(shape)),)).astype(numpy.uint8)


def chainer_hidden(model, pixels):
    """The Chainer ConvNet's hidden layer outputs (+-1), flattened."""
    predictor = model.predictor
    x = chainer.Variable(numpy.asarray(reference.mnist.scaled(pixels)))
    outputs = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        h = predictor.take_input(F.reshape(x, (len(x),) +
                                           predictor.in_shape))
        for link, bn, pool in predictor.layers()[:-1]:
            h = link(h)
            if pool:
                h = F.max_pooling_2d(h, pool, stride=pool, cover_all=False)
            h = predictor.activate(bn(h))
            outputs.append(h.array.reshape(len(h), -1))
    return outputs


@pytest.mark.parametrize('architecture,shape', NETWORKS)
@pytest.mark.parametrize('centered', [True, False])
def test_blas_engine_is_the_chainer_convnet(architecture, shape, centered):
    model, config = helpers.binarized_convnet(architecture, shape,
                                              centered_input=centered)
    network = packed_export.export(model, config)
    pixels = pixels_for(shape, 60, len(architecture))
    blas = packed_engine.select(network, kind='blas')
    h = blas.device.send(pixels)
    ours = []
    for layer in blas.layers()[:-1]:
        h = layer(h)
        ours.append(h.reshape(len(h), -1))
    theirs = chainer_hidden(model, pixels)
    # The first layer's float32 rounding may tip a unit whose sum lies
    # within about 1e-5 of its threshold; every later layer is exact for
    # the same input.
    assert (ours[0] != theirs[0]).mean() < 1e-3
    for i in range(1, len(ours)):
        expected = chainer_hidden_from(model, i, ours[i - 1])
        numpy.testing.assert_array_equal(ours[i], expected)
    # Every unit fires for some image and not for others somewhere.
    assert 0 < numpy.mean(numpy.concatenate(ours, axis=1) > 0) < 1
    numpy.testing.assert_array_equal(
        blas.classify(pixels),
        reference.chainer_labels(model, pixels, 25))


def chainer_hidden_from(model, i, h):
    """Hidden layer ``i`` of the Chainer ConvNet given layer ``i - 1``'s
    output ``h`` (flattened +-1)."""
    predictor = model.predictor
    link, bn, pool = predictor.layers()[i]
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        y = link(_shaped(predictor, i, h))
        if pool:
            y = F.max_pooling_2d(y, pool, stride=pool, cover_all=False)
        return predictor.activate(bn(y)).array.reshape(len(h), -1)


def _shaped(predictor, i, h):
    """``h`` shaped as layer ``i`` takes it."""
    link = predictor.layers()[i][0]
    if link.W.ndim == 2:
        return h.reshape(len(h), -1)
    shapes = packed_shapes(predictor)
    return h.reshape((len(h),) + shapes[i])


def packed_shapes(predictor):
    """The input shape of each convolution layer of ``predictor``."""
    shape = predictor.in_shape
    shapes = []
    for link, _, pool in predictor.layers():
        if link.W.ndim != 4:
            break
        shapes.append(shape)
        conv = packed_format.Convolution(shape, len(link.W), link.W.shape[2],
                                         1, link.pad[0], pool)
        shape = conv.out_shape()
    return shapes


def test_the_export_describes_the_convolutions_and_round_trips(tmp_path):
    model, config = helpers.binarized_convnet('5C3-P2-7C3-P2-9FC')
    network = packed_export.export(model, config)
    assert network.sizes == [784, 5 * 14 * 14, 7 * 7 * 7, 9, 10]
    assert network.meta['version'] == 2
    assert network.meta['input']['value'] == '2p - 255'
    assert network.meta['convolutions'] == [
        {'in_shape': [1, 28, 28], 'filters': 5, 'ksize': 3, 'stride': 1,
         'pad': 1, 'pool': 2},
        {'in_shape': [5, 14, 14], 'filters': 7, 'ksize': 3, 'stride': 1,
         'pad': 1, 'pool': 2}]
    # Filters are rows of the link's weights flattened in their order.
    signs = numpy.where(model.predictor.l2.W.array >= 0, 1., -1.)
    numpy.testing.assert_array_equal(network.signs(1),
                                     signs.reshape(7, 45))
    assert [w.shape for w in network.weights] == [
        (5, 1), (7, 1), (9, 6), (10, 1)]
    assert [t.shape for t in network.thresholds] == [(5,), (7,), (9,)]
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, network)
    loaded = packed_format.load(path)
    assert loaded.convolutions == network.convolutions
    assert loaded.convolutions[1].out_shape() == (7, 7, 7)
    pixels = pixels_for((1, 28, 28), 20, 3)
    numpy.testing.assert_array_equal(
        packed_engine.select(loaded, kind='blas').logits(pixels),
        packed_engine.select(network, kind='blas').logits(pixels))


@pytest.mark.parametrize('form', ['scalar', 'avx2', 'avx512'])
@pytest.mark.parametrize('architecture,shape', NETWORKS)
def test_every_form_gives_the_blas_layers(form, architecture, shape):
    model, config = helpers.binarized_convnet(architecture, shape, seed=2)
    network = packed_export.export(model, config)
    pixels = pixels_for(shape, 70, 5)
    blas = packed_engine.select(network, kind='blas')
    packed = packed_engine.CPU_ENGINES[form](network)
    numpy.testing.assert_array_equal(packed.dots(pixels),
                                     blas.dots(pixels))
    numpy.testing.assert_array_equal(packed.dots(pixels[:1]),
                                     blas.dots(pixels[:1]))


# Strides, filters of even size, padding of 0 and 2, 1 x 1 filters, a
# pooling window of 3, channels beyond a word; an unpadded odd filter on
# the pixels, then later convolutions of strides 1 and 2.
RANDOM_NETWORKS = [
    ((3, 11, 10), [(8, 3, 2, 1, 0), (70, 2, 1, 0, 2)]),
    ((1, 12, 9), [(5, 5, 1, 2, 3), (3, 1, 1, 0, 0)]),
    ((2, 7, 7), [(65, 3, 1, 1, 0), (4, 3, 3, 2, 0)]),
    ((1, 13, 12), [(6, 5, 1, 0, 0), (33, 3, 1, 1, 2), (9, 3, 2, 1, 0)]),
]


@pytest.mark.parametrize('in_shape,layers', RANDOM_NETWORKS)
@pytest.mark.parametrize('value', sorted(packed_format.PIXEL_VALUES))
def test_every_form_on_strides_and_borders(in_shape, layers, value):
    network = helpers.random_packed_convnet(in_shape, layers, value=value)
    pixels = pixels_for(in_shape, 40, 2)
    expected = packed_engine.select(network, kind='blas').dots(pixels)
    reference_layers = None
    for form in ['scalar', 'avx2', 'avx512']:
        engine = packed_engine.CPU_ENGINES[form](network)
        numpy.testing.assert_array_equal(engine.dots(pixels), expected)
        # Layer by layer too: each convolution's words (plain in every
        # form, where the fully connected layers' are laid out as the form
        # counts) those of the scalar reference form, whose kernels are
        # others.
        outputs, h = [], pixels
        for layer in engine.layers():
            h = layer(h)
            outputs.append(h)
        numpy.testing.assert_array_equal(h, expected)
        reference_layers = reference_layers or outputs
        for ours, theirs in zip(outputs[:len(layers)],
                                reference_layers[:len(layers)]):
            numpy.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif('avx2' not in cpu_features.runnable_forms(),
                    reason='this CPU has no AVX2')
@pytest.mark.parametrize('size,stride', [(24, 1), (24, 2), (16, 1)])
def test_the_avx2_forms_compiled_call_runs_both_kinds_of_lanes(size,
                                                               stride):
    # Later convolutions of stride 1 run across the positions' lanes, one
    # of stride 2 across the filters': the ConvNet is one compiled call
    # either way. For one image, a layer of few positions (8 x 8) runs
    # across the filters, in a compiled call of its own.
    network = helpers.random_packed_convnet((1, size, size), [
        (8, 3, 1, 1, 0), (16, 3, 1, 1, 2), (12, 3, stride, 1, 0)], seed=3)
    engine = packed_engine.CPU_ENGINES['avx2'](network)
    assert engine.first_lanes.positions
    assert [lane.positions for lane in engine.lanes] == [True, stride == 1]
    assert engine.compiled is not None
    assert (engine.compiled_one is engine.compiled) == (size == 24)
    pixels = pixels_for((1, size, size), 30, 4)
    blas = packed_engine.select(network, kind='blas')
    expected = blas.dots(pixels)
    numpy.testing.assert_array_equal(engine.dots(pixels), expected)
    for i in range(3):
        numpy.testing.assert_array_equal(engine.dots(pixels[i:i + 1]),
                                         expected[i:i + 1])
    h = pixels
    for layer in engine.layers():
        h = layer(h)
    numpy.testing.assert_array_equal(h, expected)


@pytest.mark.gpu
@pytest.mark.parametrize('case', range(len(NETWORKS) +
                                       len(RANDOM_NETWORKS)))
def test_the_gpu_engine_gives_the_cpu_dots(case):
    if case < len(NETWORKS):
        architecture, shape = NETWORKS[case]
        model, config = helpers.binarized_convnet(architecture, shape)
        network = packed_export.export(model, config)
    else:
        shape, layers = RANDOM_NETWORKS[case - len(NETWORKS)]
        network = helpers.random_packed_convnet(shape, layers)
    pixels = pixels_for(shape, 50, case)
    device = chainer.get_device('@cupy:0')
    expected = packed_engine.select(network, kind='blas').dots(pixels)
    for kind in packed_engine.ENGINES:
        engine = packed_engine.select(network, device, kind)
        numpy.testing.assert_array_equal(engine.dots(pixels), expected)
        numpy.testing.assert_array_equal(engine.dots(pixels[:1]),
                                         expected[:1])


@pytest.mark.parametrize('form', ['avx2', 'avx512'])
@pytest.mark.parametrize('architecture,shape', NETWORKS)
def test_one_compiled_call_gives_the_layers_dots(form, architecture, shape,
                                                 monkeypatch):
    convnet_kernels = pytest.importorskip(
        'quantized_net.packed.kernels.convnet')
    model, config = helpers.binarized_convnet(architecture, shape, seed=3)
    network = packed_export.export(model, config)
    engine = packed_engine.CPU_ENGINES[form](network)
    # Every convolution across the lanes, and pools of 2 or none.
    assert (engine.compiled is not None) == (
        architecture != '3C5-P3-70C3-P2-11FC-6FC')
    pixels = pixels_for(shape, 9, 7)
    h = pixels
    for layer in engine.layers():
        h = layer(h)
    numpy.testing.assert_array_equal(engine.dots(pixels), h)
    # A batch larger than a call runs in passes, to the same dots.
    monkeypatch.setattr(convnet_kernels, 'INPUT_BYTES', 1)
    numpy.testing.assert_array_equal(
        packed_engine.CPU_ENGINES[form](network).dots(pixels), h)
    assert engine.dots(pixels[:0]).shape == (0, network.sizes[-1])


LARGE_LAYERS = """
import numpy
import helpers
from quantized_net.packed import engine, export
model, config = helpers.binarized_convnet('32C3-32C3-P2-64C3-P2-16FC',
                                          (1, 28, 28), seed=4)
packed = engine.CPU_ENGINES['avx512'](export.export(model, config))
assert packed.compiled is not None
pixels = numpy.random.RandomState(8).randint(0, 256, (60, 784)).astype(
    numpy.uint8)
dots = packed.dots(pixels)
h = pixels
for layer in packed.layers():
    h = layer(h)
assert (dots == h).all()
"""


def test_the_compiled_call_keeps_its_large_layers_alive():
    # Each layer's megabytes of planes are mapped apart and unmapped when
    # released (a fixed malloc threshold): read after their release, they
    # end the process.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536',
               PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, '-c', LARGE_LAYERS], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
