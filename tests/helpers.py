"""What the tests share: running a script as a user does, the one-line
error a script must end with, data sets made here, small models."""
import collections
import contextlib
import gzip
import http.server
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib

import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer.backends import cuda

from quantized_net.packed import format as packed_format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The helper scripts the command tests run, and their environment: the
#: project's root on the path, as the commands have it.
SCRIPTS = os.path.join(ROOT, 'tests', 'scripts')
SCRIPT_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p]))

NAMES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def gpu_available():
    if not cuda.available:
        return False
    try:
        return cuda.cupy.cuda.runtime.getDeviceCount() > 0
    except cuda.cupy.cuda.runtime.CUDARuntimeError:
        return False


MPIEXEC = shutil.which('mpiexec', path=os.path.dirname(sys.executable)) \
    or shutil.which('mpiexec')


def mpi_missing():
    """Why MPI cannot run here (a reason to skip), or None."""
    try:
        from mpi4py import MPI  # noqa: F401
    except (ImportError, RuntimeError) as e:  # RuntimeError: no libmpi
        return 'mpi4py cannot load MPI ({}); pip install -r ' \
            'requirements-mpi.txt'.format(e)
    if MPIEXEC is None:
        return 'no mpiexec on the PATH or beside {}'.format(sys.executable)
    return None


def run_script(script, *args, env=None, cwd=None):
    """Runs ``script`` (a file name in the project root) with ``args`` in a
    subprocess; the CompletedProcess, output captured as text."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
        capture_output=True, text=True, env=full_env, cwd=cwd)


def assert_one_line_error(result, *fragments, code=1):
    """The script failed with exit status ``code`` and one line on stderr
    (notices about the data set, and argparse's usage lines for ``code``
    2, aside) holding every fragment; returns that line."""
    assert result.returncode == code, result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith('notice: ') and
             not (code == 2 and line.startswith(('usage:', '   ')))]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.stderr
    return lines[0]


def without_time(log):
    """A LogReport log without ``elapsed_time``, the one field that a
    rerun changes."""
    return [{k: v for k, v in entry.items() if k != 'elapsed_time'}
            for entry in log]


def model_arrays(out, name=None):
    """The arrays of ``out``'s model.npz (or the model file ``name``), by
    name."""
    from quantized_net.training import result_dir
    with numpy.load(os.path.join(out, name or result_dir.MODEL_FILE),
                    allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def assert_same_run(out, reference, best=True):
    """``out`` holds the run of ``reference``: the same log, entry for
    entry, and the same models (the best-validation one too, where there
    is one, unless not ``best``), bit for bit."""
    from quantized_net.training import result_dir
    assert without_time(result_dir.read_log(out)) == \
        without_time(result_dir.read_log(reference))
    for model_file in (result_dir.MODEL_FILE,) + (
            (result_dir.BEST_MODEL_FILE,) if best else ()):
        present = os.path.isfile(os.path.join(reference, model_file))
        assert os.path.isfile(os.path.join(out, model_file)) == present
        if not present:
            continue
        ours = model_arrays(out, model_file)
        theirs = model_arrays(reference, model_file)
        assert sorted(ours) == sorted(theirs)
        for name in ours:
            numpy.testing.assert_array_equal(ours[name], theirs[name], name)


def train_steps(model, optimizer, x, t, steps):
    """Trains ``model`` on one batch for ``steps`` updates; the losses."""
    losses = []
    for _ in range(steps):
        model.cleargrads()
        loss = model(x, t)
        loss.backward()
        optimizer.update()
        losses.append(float(loss.array))
    return losses


def idx_images(images):
    """IDX3 bytes of uint8 images of shape (N, rows, cols)."""
    n, rows, cols = images.shape
    header = numpy.array([2051, n, rows, cols], '>u4').tobytes()
    return header + images.astype(numpy.uint8).tobytes()


def idx_labels(labels):
    """IDX1 bytes of uint8 labels."""
    header = numpy.array([2049, len(labels)], '>u4').tobytes()
    return header + numpy.asarray(labels, numpy.uint8).tobytes()


def write_idx(directory, split, images, labels, gz=True):
    """Writes one split under its canonical names; returns the two paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, data in zip(NAMES[split],
                          (idx_images(images), idx_labels(labels))):
        path = os.path.join(directory, name + ('.gz' if gz else ''))
        with open(path, 'wb') as f:
            f.write(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths


def synthetic_digits(n, seed):
    """``n`` 28x28 images of 10 noisy class prototypes, and their labels."""
    prototypes = numpy.random.RandomState(1234).rand(10, 28, 28) * 255
    rng = numpy.random.RandomState(seed)
    labels = rng.randint(0, 10, n).astype(numpy.uint8)
    noise = rng.normal(0, 60, (n, 28, 28))
    images = numpy.clip(prototypes[labels] + noise, 0, 255)
    return images.astype(numpy.uint8), labels


def write_synthetic(directory):
    """600 training and 200 test images of :func:`synthetic_digits` in
    MNIST's IDX layout, written to ``directory``; returns it."""
    write_idx(directory, 'train', *synthetic_digits(600, seed=1))
    write_idx(directory, 'test', *synthetic_digits(200, seed=2))
    return directory


def write_subset(directory, n_train=2000, n_test=500):
    """The first images of real MNIST when ``MNIST_DIR`` is set, else as
    many synthetic ones, written to ``directory``."""
    source = os.environ.get('MNIST_DIR')
    if not source:
        write_idx(directory, 'train', *synthetic_digits(n_train, seed=1))
        write_idx(directory, 'test', *synthetic_digits(n_test, seed=2))
        return
    from quantized_net.training import mnist
    train, test = mnist.read_mnist(source)
    for split, (images, labels), n in (('train', train, n_train),
                                       ('test', test, n_test)):
        write_idx(directory, split, images[:n].reshape(n, 28, 28),
                  labels[:n])


def binarized_model(units=96, layers=2, seed=0):
    """A binarized MLP (the bnn preset, smaller) with random weights and
    batch-normalisation statistics, some scales negative or zero; and its
    configuration."""
    from quantized_net.training import presets
    config = dict(presets.PRESETS['bnn'], preset='bnn', unit=units,
                  layers=layers)
    model = presets.build_classifier(config)
    rng = numpy.random.RandomState(seed)
    for link, bn in model.predictor.layers():
        link.W.array[...] = rng.uniform(-1, 1, link.W.shape)
        link.b.array[...] = rng.normal(0, 2, link.b.shape)
        n, k = link.W.shape
        bn.avg_mean[...] = rng.normal(0, numpy.sqrt(k) / 4, n)
        bn.avg_var[...] = k * rng.uniform(0.05, 2, n)
        bn.gamma.array[...] = rng.normal(0, 1, n)
        bn.gamma.array[:3] = (0., -1., -0.5)
        bn.beta.array[...] = rng.normal(0, 0.5, n)
    return model, config


def binarized_convnet(architecture='5C3-P2-7C3-P2-9FC', in_shape=(1, 28, 28),
                      seed=0, centered_input=True, dataset=None):
    """A binarized ConvNet (the bnn-conv preset's quantizers) of
    ``architecture`` on images of ``in_shape``, with random weights and
    batch-normalisation statistics as :func:`binarized_model`'s; and its
    configuration (trained on ``dataset``, if given)."""
    import net
    from quantized_net.quantization import quantizers
    from quantized_net.training import presets
    config = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  architecture=architecture, centered_input=centered_input)
    if dataset:
        config['dataset'] = dataset
    predictor = net.ConvNet(
        in_shape, architecture, 10, centered_input=centered_input,
        bn_eps=config['bn_eps'], activation=config['activation'],
        **{role: quantizers.parse(config[role])
           for role in presets.QUANTIZER_KEYS})
    model = chainer.links.Classifier(predictor)
    rng = numpy.random.RandomState(seed)
    for link, bn, _ in predictor.layers():
        link.W.array[...] = rng.uniform(-1, 1, link.W.shape)
        link.b.array[...] = rng.normal(0, 2, link.b.shape)
        n, k = len(link.W), link.W[0].size
        bn.avg_mean[...] = rng.normal(0, numpy.sqrt(k) / 4, n)
        bn.avg_var[...] = k * rng.uniform(0.05, 2, n)
        bn.gamma.array[...] = rng.normal(0, 1, n)
        bn.gamma.array[:3] = (0., -1., -0.5)[:n]
        bn.beta.array[...] = rng.normal(0, 0.5, n)
    return model, config


def write_result(directory, model, config):
    """A directory as train_mnist.py leaves it: args.json and model.npz."""
    from quantized_net.training import result_dir
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, result_dir.ARGS_FILE), 'w') as f:
        json.dump({'config': config}, f)
    chainer.serializers.save_npz(
        os.path.join(directory, result_dir.MODEL_FILE), model)
    return directory


# Reference formulas of the quantizers, computed the slow way.

def reference_ap2(x):
    """sign(x) * 2**round(log2|x|), 0 -> 0, evaluated in float64.

    float64 log2 of a float32 is close enough to decide every rounding
    correctly (no float32 lies within 1e-9 of an odd multiple of 1/2 in
    log2), so this is the exact value, computed the slow way.
    """
    x64 = x.astype(numpy.float64)
    with numpy.errstate(divide='ignore', over='ignore', invalid='ignore'):
        q = numpy.sign(x64) * numpy.exp2(numpy.round(numpy.log2(numpy.abs(
            x64))))
        q = numpy.where(x64 == 0, x64, q)
        return q.astype(numpy.float32)  # 2**128 overflows to inf


def reference_log_quant(x, fsr):
    return numpy.clip(reference_ap2(x), -fsr, fsr).astype(numpy.float32)


def original_seed_formula(x):
    """The original's LogQuant(64 v, 64) / 64, computed as it was."""
    return reference_log_quant(numpy.float32(64) * x, 64) / numpy.float32(64)


def f32(bits):
    return numpy.array(bits, numpy.uint32).view(numpy.float32)


def all_magnitudes(n, seed=0):
    """float32 values of both signs over the whole exponent range."""
    rng = numpy.random.RandomState(seed)
    bits = rng.randint(0, 2 ** 32, n, dtype=numpy.uint64).astype(
        numpy.uint32)
    x = bits.view(numpy.float32)
    return x[numpy.isfinite(x)]


def kernel_inputs():
    """Every sign and magnitude, the sqrt(2) boundary in several binades,
    subnormals, zeros, infinities, NaN, and values near +-1."""
    boundary = numpy.concatenate([
        f32(numpy.arange(0x3FB50400, 0x3FB50600) + (e << 23))
        for e in (-100, -30, -1, 0, 1, 30, 100)])
    return numpy.concatenate([
        all_magnitudes(300000, seed=9), boundary, -boundary,
        f32(numpy.arange(0, 5000)), f32(numpy.arange(0x80000000, 0x80001000)),
        f32(numpy.arange(0x007FF000, 0x00801000)),
        numpy.linspace(-1.2, 1.2, 20001, dtype=numpy.float32),
        numpy.array([0, -0.0, numpy.inf, -numpy.inf, numpy.nan,
                     numpy.finfo(numpy.float32).max], numpy.float32)])


#: The axes of a batch of images in memory, outermost first: as NumPy
#: makes them, as a convolution leaves its output, and with rows and
#: columns swapped (a layout no kernel follows).
C_ORDER, CHANNELS_LAST, COLUMNS_FIRST = ((0, 1, 2, 3), (0, 2, 3, 1),
                                         (0, 1, 3, 2))


def laid_out(a, order):
    """``a`` with the same values, its axes in memory in ``order``
    (outermost first)."""
    return numpy.ascontiguousarray(a.transpose(order)).transpose(
        numpy.argsort(order))


def identical_bits(a, b):
    """The same dtype, shape and bytes: NaNs of the same bits included."""
    assert a.dtype == b.dtype and a.shape == b.shape, (
        a.dtype, a.shape, b.dtype, b.shape)
    numpy.testing.assert_array_equal(a.view(numpy.uint8), b.view(numpy.uint8))


def same_bits(a, b):
    """Equal bit for bit, except that any NaN equals any NaN."""
    nan = numpy.isnan(a)
    numpy.testing.assert_array_equal(nan, numpy.isnan(b))
    numpy.testing.assert_array_equal(a[~nan].view(numpy.uint32),
                                     b[~nan].view(numpy.uint32))


# Packed networks.

def random_packed_convnet(in_shape, layers, units=(9, 10), seed=0,
                          value='2p - 255'):
    """A packed ConvNet of random signs, thresholds near the middle of each
    layer's range and flips: ``layers`` a list of ``(filters, ksize,
    stride, pad, pool)``, then fully connected layers of ``units``."""
    rng = numpy.random.RandomState(seed)
    convolutions = []
    shape = tuple(in_shape)
    for filters, ksize, stride, pad, pool in layers:
        conv = packed_format.Convolution(shape, filters, ksize, stride, pad,
                                         pool)
        convolutions.append(conv)
        shape = conv.out_shape()
    sizes = ([int(numpy.prod(in_shape))] +
             [int(numpy.prod(c.out_shape())) for c in convolutions] +
             list(units))
    meta = dict(packed_format.LAYOUT, format=packed_format.FORMAT,
                version=packed_format.VERSION, sizes=sizes,
                input={'value': value},
                convolutions=[c.to_meta() for c in convolutions])
    network = packed_format.PackedNetwork(meta, None, None, None, None)
    weights, thresholds, flips = [], [], []
    for i in range(len(sizes) - 1):
        rows, k = network.row_shape(i)
        weights.append(packed_format.pack_signs(
            rng.choice([-1., 1.], (rows, k))))
        spread = numpy.sqrt(k) * (128 if i == 0 else 1)
        thresholds.append(numpy.round(rng.normal(0, spread, rows)).astype(
            numpy.int32))
        flips.append(rng.rand(rows) < 0.3)
    last = {name: rng.normal(0, 1, sizes[-1]).astype(numpy.float32)
            for name in packed_format.LAST_LAYER_KEYS}
    return packed_format.PackedNetwork(meta, weights, thresholds[:-1],
                                       flips[:-1], last)


def random_signs(rng, shape):
    return rng.choice([-1., 1.], shape).astype(numpy.float32)


def reference_fires(d, thresholds, flip):
    return packed_format.pack_signs(
        numpy.where((d >= thresholds) != flip, 1., -1.))


def float_convolution(values, filters, conv):
    """``d`` ``(images, filters, out_h, out_w)`` of the ``values`` (+-1,
    or the pixels' values) and the +-1 ``filters``, zero padding: the
    trained network's sums."""
    images, channels, height, width = values.shape
    k, stride, pad = conv.ksize, conv.stride, conv.pad
    padded = numpy.zeros((images, channels, height + 2 * pad,
                          width + 2 * pad))
    padded[:, :, pad:pad + height, pad:pad + width] = values
    _, out_h, out_w = conv.conv_shape()
    d = numpy.zeros((images, len(filters), out_h, out_w))
    for y in range(out_h):
        for x in range(out_w):
            window = padded[:, :, y * stride:y * stride + k,
                            x * stride:x * stride + k]
            d[:, :, y, x] = numpy.tensordot(window, filters,
                                            ([1, 2, 3], [1, 2, 3]))
    return d


def convolution_fires(d, thresholds, flip, conv):
    """The packed output words ``(positions, words)`` of a convolution
    whose sums are ``d`` ``(images, filters, out_h, out_w)``: ``d >= T``,
    ORed over each whole window where ``conv`` pools (2 x 2), then
    flipped."""
    images, n, out_h, out_w = d.shape
    fires = d >= thresholds[None, :, None, None]
    if conv.pool:
        fires = fires[:, :, :out_h // 2 * 2, :out_w // 2 * 2].reshape(
            images, n, out_h // 2, 2, out_w // 2, 2).any(axis=(3, 5))
    return reference_fires(fires.transpose(0, 2, 3, 1).reshape(-1, n), 1,
                           flip)


#: A random convolution and what it must give: its input (packed words
#: ``(images, height, width, words)``, or uint8 pixels ``(images,
#: n_in)``), its packed filters, the border class of each output position,
#: each class's limits (for pixels, :func:`convolutions.first_limits`'
#: bounds), its flips as output words, and the output words of the float
#: convolution of the same values.
ConvolutionCase = collections.namedtuple(
    'ConvolutionCase', 'x filters classes limits flip_words expected')


def bit_convolution_case(conv, images, seed):
    """A :class:`ConvolutionCase` on +-1 values: thresholds around 0, the
    first filter's always passed, the second's never."""
    from quantized_net.packed.kernels import borders, convolutions
    rng = numpy.random.RandomState(seed)
    channels, height, width = conv.in_shape
    n, k = conv.filters, conv.taps()
    signs = random_signs(rng, (images,) + conv.in_shape)
    filters = random_signs(rng, (n, channels, conv.ksize, conv.ksize))
    d = float_convolution(signs, filters, conv)
    t = rng.randint(-k // 4, k // 4 + 1, n).astype(numpy.int32)
    t[0] = -k - 1  # always fires
    if n > 1:
        t[1] = k + 1  # never
    flip = rng.rand(n) < 0.5
    packed_filters = packed_format.pack_signs(filters.reshape(n, -1))
    classes, inside = borders.tap_classes(conv)
    h = packed_format.pack_signs(signs.transpose(0, 2, 3, 1).reshape(
        -1, channels)).reshape(images, height, width, -1)
    return ConvolutionCase(
        h, packed_filters, classes,
        borders.class_limits(packed_filters, t, conv, inside),
        convolutions.flip_words(flip), convolution_fires(d, t, flip, conv))


def pixel_convolution_case(conv, images, seed, value):
    """A :class:`ConvolutionCase` on 8-bit pixels of the pixel map
    ``value`` (:data:`packed_format.PIXEL_VALUES`), 40% blank, the first
    image all 255 and the first filter all +1 (the widest sums), the
    first threshold the largest sum, the second always passed, the third
    never."""
    from quantized_net.packed.kernels import borders, convolutions
    rng = numpy.random.RandomState(seed)
    n = conv.filters
    channels, height, width = conv.in_shape
    pixels = rng.randint(0, 256, (images, channels * height * width))
    pixels[rng.rand(*pixels.shape) < 0.4] = 0
    pixels[0] = 255
    pixels = pixels.astype(numpy.uint8)
    filters = random_signs(rng, (n, channels, conv.ksize, conv.ksize))
    filters[0] = 1
    a, b = packed_format.PIXEL_VALUES[value]
    values = (a * pixels.astype(numpy.float64) + b).reshape(
        images, channels, height, width)
    d = float_convolution(values, filters, conv)
    spread = 128 * numpy.sqrt(conv.taps())
    t = numpy.round(rng.normal(0, spread, n)).astype(numpy.int32)
    t[0] = int(d[0, 0].max())  # fires at one position at least
    if n > 2:
        t[1] = -2 ** 30  # always
        t[2] = 2 ** 30  # never
    flip = rng.rand(n) < 0.5
    packed_filters = packed_format.pack_signs(filters.reshape(n, -1))
    classes, inside = borders.tap_classes(conv)
    limits = convolutions.first_limits(packed_filters, t, conv, inside,
                                       (a, b))
    return ConvolutionCase(pixels, packed_filters, classes, limits,
                           convolutions.flip_words(flip),
                           convolution_fires(d, t, flip, conv))


def random_pixels(rng, m, k, zeros=0.6):
    pixels = rng.randint(0, 256, (m, k)).astype(numpy.uint8)
    pixels[rng.rand(m, k) < zeros] = 0
    return pixels


#: A LogReport log of a run with validation and test.
LOG = [
    {'epoch': 1, 'main/accuracy': 0.9, 'validation/main/accuracy': 0.95,
     'test/main/accuracy': 0.96},
    {'epoch': 2, 'main/accuracy': 0.92, 'validation/main/accuracy': 0.97,
     'test/main/accuracy': 0.965},
    {'epoch': 3, 'main/accuracy': 0.93, 'validation/main/accuracy': 0.97,
     'test/main/accuracy': 0.98},
    {'epoch': 4, 'main/accuracy': 0.94},  # a run that stopped logging
]


# The SVHN format-2 files: MATLAB 5.0 (level 5) MAT files, written here.
MI_INT8, MI_UINT8, MI_INT32, MI_UINT32, MI_DOUBLE = 1, 2, 5, 6, 9
DOUBLE, CHAR, UINT8 = 6, 4, 9


def subelement(kind, data, order):
    """A data element, in the small format when it fits in 4 bytes."""
    if len(data) <= 4:
        return struct.pack(order + 'I', len(data) << 16 | kind) + \
            data + bytes(4 - len(data))
    return struct.pack(order + 'II', kind, len(data)) + data + \
        bytes(-len(data) % 8)


def matrix(name, array_class, dims, kind, values, order='<', flags=0):
    """A miMATRIX element, and where its values lie in it."""
    body = (subelement(MI_UINT32, struct.pack(order + 'II',
                                              array_class | flags, 0), order) +
            subelement(MI_INT32, struct.pack(
                '{}{}i'.format(order, len(dims)), *dims), order) +
            subelement(MI_INT8, name, order))
    start = 8 + len(body) + (8 if len(values) > 4 else 4)
    body += subelement(kind, values, order)
    return struct.pack(order + 'II', 14, len(body)) + body, \
        (start, len(values))


def x_matrix(images, order='<'):
    """``X`` as the format-2 files hold it: uint8, 32 x 32 x 3 x N,
    column-major."""
    values = images.transpose(0, 1, 3, 2).tobytes()
    return matrix(b'X', UINT8, (32, 32, 3, len(images)), MI_UINT8, values,
                  order)


def y_matrix(labels, order='<', stored=MI_DOUBLE):
    """``y``: double N x 1, 10 for the digit 0, its values stored as
    doubles or, as MATLAB does when they fit, as uint8."""
    values = numpy.where(labels == 0, 10, labels).astype(
        {MI_DOUBLE: order + 'f8', MI_UINT8: 'u1'}[stored]).tobytes()
    return matrix(b'y', DOUBLE, (len(labels), 1), stored, values, order)


def mat_file(matrices, compressed=False, order='<'):
    """A level 5 MAT file of the elements ``matrices``, each compressed
    on its own as MATLAB writes them; and where each one's values lie in
    the file (uncompressed only)."""
    data = bytearray(b'MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: '
                     b'Mon Jan  1 00:00:00 2024'.ljust(116) + bytes(8) +
                     struct.pack(order + 'H', 0x0100) +
                     (b'IM' if order == '<' else b'MI'))
    where = []
    for element, (start, size) in matrices:
        if compressed:
            packed = zlib.compress(element)
            data += struct.pack(order + 'II', 15, len(packed)) + packed
        else:
            where.append((len(data) + start, size))
            data += element
    return bytes(data), where


def write_svhn(directory, n_train=300, n_test=100, n_extra=0, seed=0):
    """``train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat``
    where ``n_extra``) in ``directory``, compressed as the published
    files: colour images whose brightest channel and row say their class
    (learnable), noise besides; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    rng = numpy.random.RandomState(seed)
    for name, count in (('train', n_train), ('test', n_test),
                        ('extra', n_extra)):
        if not count:
            continue
        images, labels = class_images(count, rng)
        with open(os.path.join(directory, name + '_32x32.mat'), 'wb') as f:
            f.write(mat_file([x_matrix(images), y_matrix(labels)],
                             compressed=True)[0])
    return directory


def class_images(count, rng):
    """``(uint8 images (count, 3, 32, 32), labels)``: noise, with a bright
    band whose channel and row say the class."""
    labels = numpy.arange(count) % 10
    images = rng.randint(0, 96, (count, 3, 32, 32)).astype(numpy.uint8)
    for i, label in enumerate(labels):
        images[i, label % 3, 3 * label:3 * label + 3] = 255
    return images, labels.astype(numpy.uint8)


def write_cifar10(directory, per_batch=60, n_test=100, seed=0):
    """The six files of CIFAR-10's binary version in ``directory``
    (``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin``),
    each record a label byte and 3072 pixel bytes, images as
    :func:`class_images`; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    rng = numpy.random.RandomState(seed)
    for name, count in [('data_batch_{}.bin'.format(i), per_batch)
                        for i in range(1, 6)] + [('test_batch.bin', n_test)]:
        images, labels = class_images(count, rng)
        records = numpy.concatenate(
            [labels[:, None], images.reshape(count, -1)], axis=1)
        with open(os.path.join(directory, name), 'wb') as f:
            f.write(records.astype(numpy.uint8).tobytes())
    return directory


@contextlib.contextmanager
def http_server(bodies):
    """A server on 127.0.0.1 for the ``with`` block, answering a GET of a
    path in ``bodies`` (path -> bytes, or a callable that returns them)
    and 404 to any other; yields ``(base URL, the paths requested)``."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            body = body() if callable(body) else body
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:{}/'.format(server.server_address[1]), \
            requests
    finally:
        server.shutdown()
        server.server_close()
