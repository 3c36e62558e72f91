"""infer_packed.py: the packed network classifies as the Chainer model
does; the script as a user runs it."""
import os
import subprocess
import sys

import numpy
import pytest

from chainer.backends import cuda

import conftest
from conftest import ROOT
import export
import infer_packed
import packed_format

SCRIPT = os.path.join(ROOT, 'infer_packed.py')
PACKED_MNIST = os.path.join(ROOT, 'docs', 'bnn', 'model.packed.npz')


def test_to_pixels():
    pixels = numpy.arange(256, dtype=numpy.uint8).reshape(1, 256)
    numpy.testing.assert_array_equal(infer_packed.to_pixels(pixels, 256),
                                     pixels)
    as_mnist = pixels.astype(numpy.float32)
    as_mnist *= 1. / 255  # as chainer.datasets.get_mnist scales them
    numpy.testing.assert_array_equal(
        infer_packed.to_pixels(as_mnist, 256), pixels)
    numpy.testing.assert_array_equal(
        infer_packed.to_pixels(pixels.reshape(1, 16, 16), 256), pixels)
    for bad in (as_mnist + 0.5 / 255, as_mnist * 2, -as_mnist):
        with pytest.raises(ValueError, match='8-bit images'):
            infer_packed.to_pixels(bad, 256)
    with pytest.raises(ValueError, match='do not hold 784 values'):
        infer_packed.to_pixels(pixels, 784)


@pytest.fixture(scope='module')
def small():
    model, config = conftest.binarized_model(units=96, layers=3, seed=5)
    return model, export.export(model, config)


def random_images(n, seed):
    images, _ = conftest.synthetic_digits(n, seed)
    return images.reshape(n, -1)


def test_packed_engine_classifies_as_the_chainer_model(small):
    model, network = small
    pixels = random_images(500, seed=7)
    expected = infer_packed.chainer_labels(model, pixels, 100)
    assert len(set(expected.tolist())) > 3  # not a constant network
    for engine in infer_packed.ENGINES:
        labels = infer_packed.Engine(network, engine).classify(pixels)
        numpy.testing.assert_array_equal(labels, expected)


def test_engines_agree_on_every_logit(small):
    _, network = small
    pixels = random_images(300, seed=8)
    packed = infer_packed.Engine(network, 'packed')
    blas = infer_packed.Engine(network, 'blas')
    numpy.testing.assert_array_equal(packed.logits(pixels),
                                     blas.logits(pixels))
    numpy.testing.assert_array_equal(packed.logits(pixels[:1]),
                                     packed.logits(pixels)[:1])


@pytest.mark.gpu
def test_gpu_engine_equals_cpu_engine(small):
    import chainer
    _, network = small
    pixels = random_images(300, seed=9)
    cpu = infer_packed.Engine(network, 'packed').logits(pixels)
    for engine in infer_packed.ENGINES:
        gpu = infer_packed.Engine(network, engine,
                                  chainer.get_device('@cupy:0'))
        numpy.testing.assert_array_equal(gpu.logits(pixels), cpu)


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True)


@pytest.fixture(scope='module')
def packed_result(tmp_path_factory, small):
    model, _ = small
    directory = str(tmp_path_factory.mktemp('small'))
    conftest.write_result(directory, model, model_config(small))
    path = os.path.join(directory, 'model.packed.npz')
    packed_format.save(path, small[1])
    return directory, path


def model_config(small):
    return small[1].meta['config']


def test_script_accuracy_and_comparison(packed_result, synthetic_dir):
    directory, path = packed_result
    result = run(path, '--dataset-dir', synthetic_dir, '--compare',
                 directory, '-b', 64)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '{}: packed engine on the CPU'.format(path)
    assert lines[1].startswith('test accuracy: ')
    assert '(200 images from the MNIST test set' in lines[1]
    assert lines[2].endswith('0 of 200 labels differ from the packed '
                             'network\'s')


def test_script_prints_labels_of_unlabelled_images(packed_result,
                                                   tmp_path):
    _, path = packed_result
    images, labels = conftest.synthetic_digits(20, seed=3)
    image_file, _ = conftest.write_idx(str(tmp_path), 'test', images,
                                       labels)
    result = run(path, '--images', image_file, '--engine', 'blas')
    assert result.returncode == 0, result.stderr
    network = packed_format.load(path)
    expected = infer_packed.Engine(network).classify(images.reshape(20, -1))
    assert result.stdout.split() == [str(c) for c in expected]


def one_line_error(result):
    assert result.returncode == 1
    assert result.stderr.startswith('infer_packed.py: error: ')
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def test_script_errors(packed_result, tmp_path, synthetic_dir):
    _, path = packed_result
    bad = str(tmp_path / 'bad.npz')
    with open(bad, 'w') as f:
        f.write('junk')
    assert 'not a packed network' in one_line_error(
        run(bad, '--dataset-dir', synthetic_dir))
    assert '--labels needs --images' in one_line_error(
        run(path, '--labels', 'x', '--dataset-dir', synthetic_dir))
    assert 'does not exist' in one_line_error(
        run(path, '--dataset-dir', str(tmp_path / 'none')))
    if not cuda.available:
        assert 'CuPy is not installed' in one_line_error(
            run(path, '--gpu', 0, '--dataset-dir', synthetic_dir))


@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='needs real MNIST (set MNIST_DIR)')
def test_packed_mnist_network_matches_the_trained_model():
    # docs/bnn/model.packed.npz is the 3 x 2048 bnn model of the README,
    # exported; the Chainer model scored 0.9755 on the test set.
    network = packed_format.load(PACKED_MNIST)
    import mnist_dataset
    _, test = mnist_dataset.get_mnist(os.environ['MNIST_DIR'])
    x, t = test._datasets
    labels = infer_packed.Engine(network).classify(x)
    assert (labels == t).sum() == 9755
