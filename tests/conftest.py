"""Shared fixtures: the project root on sys.path, IDX files made here."""
import gzip
import os
import sys

import numpy
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import chainer_compat  # noqa: E402,F401  (before chainer: NumPy 2)
from chainer.backends import cuda  # noqa: E402

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


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'gpu: needs CuPy and a CUDA GPU (skipped without them)')


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason='needs CuPy and a CUDA GPU')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture
def synthetic_dir(tmp_path):
    """A directory with a small synthetic data set in MNIST's IDX layout."""
    directory = str(tmp_path / 'synthetic')
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
    import chainer
    import mnist_dataset
    train, test = mnist_dataset.get_mnist(source)
    for split, data, n in (('train', train, n_train), ('test', test, n_test)):
        images, labels = chainer.dataset.concat_examples(data[:n])
        write_idx(directory, split,
                  numpy.rint(images * 255).reshape(n, 28, 28), labels)


def binarized_model(units=96, layers=2, seed=0):
    """A binarized MLP (the bnn preset, smaller) with random weights and
    batch-normalisation statistics, some scales negative or zero; and its
    configuration."""
    import presets
    config = dict(presets.PRESETS['bnn'], unit=units, layers=layers)
    model = presets.build_classifier(config)
    rng = numpy.random.RandomState(seed)
    for i, link in enumerate(model.predictor.linear_layers(), 1):
        link.W.array[...] = rng.uniform(-1, 1, link.W.shape)
        link.b.array[...] = rng.normal(0, 2, link.b.shape)
        bn = getattr(model.predictor, 'b{}'.format(i))
        n, k = link.W.shape
        bn.avg_mean[...] = rng.normal(0, numpy.sqrt(k) / 4, n)
        bn.avg_var[...] = k * rng.uniform(0.05, 2, n)
        bn.gamma.array[...] = rng.normal(0, 1, n)
        bn.gamma.array[:3] = (0., -1., -0.5)
        bn.beta.array[...] = rng.normal(0, 0.5, n)
    return model, config


def write_result(directory, model, config):
    """A directory as train_mnist.py leaves it: args.json and model.npz."""
    import json
    import chainer
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'args.json'), 'w') as f:
        json.dump({'config': config}, f)
    chainer.serializers.save_npz(os.path.join(directory, 'model.npz'), model)
    return directory
