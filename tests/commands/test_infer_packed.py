"""infer_packed.py as a user runs it."""
import importlib.util
import os
import shutil

import pytest

from chainer.backends import cuda

import helpers
from helpers import assert_one_line_error
from quantized_net.packed import engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features


def run(*args):
    return helpers.run_script('infer_packed.py', *args)


@pytest.fixture(scope='module')
def packed_result(tmp_path_factory):
    model, config = helpers.binarized_model(units=96, layers=3, seed=5)
    directory = str(tmp_path_factory.mktemp('small'))
    helpers.write_result(directory, model, config)
    path = os.path.join(directory, packed_format.PACKED_FILE)
    packed_format.save(path, packed_export.export(model, config))
    return directory, path


def test_script_accuracy_and_comparison(packed_result, synthetic_dir):
    directory, path = packed_result
    result = run(path, '--dataset-dir', synthetic_dir, '--compare',
                 directory, '-b', 64)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '{}: packed engine on the CPU ({} kernels)'.format(
        path, cpu_features.best_form())
    assert lines[1].startswith('test accuracy: ')
    assert '(200 images from the MNIST test set' in lines[1]
    assert lines[2].endswith('0 of 200 labels differ from the packed '
                             'network\'s')


def test_script_compares_with_the_best_validation_model(
        packed_result, synthetic_dir, tmp_path):
    directory, path = packed_result
    assert_one_line_error(
        run(path, '--dataset-dir', synthetic_dir, '--compare', directory,
            '--best'), 'model_best.npz does not exist', '(--validation N)')
    best = str(tmp_path / 'best')
    shutil.copytree(directory, best)
    os.rename(os.path.join(best, 'model.npz'),
              os.path.join(best, 'model_best.npz'))
    result = run(path, '--dataset-dir', synthetic_dir, '--compare', best,
                 '--best')
    assert result.returncode == 0, result.stderr
    line = result.stdout.splitlines()[2]
    assert line.startswith('Chainer model {}: test accuracy '.format(
        os.path.join(best, 'model_best.npz')))
    assert line.endswith('0 of 200 labels differ from the packed '
                         'network\'s')


def test_script_prints_labels_of_unlabelled_images(packed_result,
                                                   tmp_path):
    _, path = packed_result
    images, labels = helpers.synthetic_digits(20, seed=3)
    image_file, _ = helpers.write_idx(str(tmp_path), 'test', images,
                                      labels)
    result = run(path, '--images', image_file, '--engine', 'blas')
    assert result.returncode == 0, result.stderr
    network = packed_format.load(path)
    expected = engine.select(network, kind='blas').classify(
        images.reshape(20, -1))
    assert result.stdout.split() == [str(c) for c in expected]


def test_script_errors(packed_result, tmp_path, synthetic_dir):
    _, path = packed_result
    bad = str(tmp_path / 'bad.npz')
    with open(bad, 'w') as f:
        f.write('junk')
    prefix = 'infer_packed.py: error: '
    assert_one_line_error(run(bad, '--dataset-dir', synthetic_dir),
                          prefix, 'not a packed network')
    assert_one_line_error(
        run(path, '--labels', 'x', '--dataset-dir', synthetic_dir),
        prefix, '--labels needs --images')
    assert_one_line_error(
        run(path, '--dataset-dir', str(tmp_path / 'none')),
        prefix, 'does not exist')
    assert_one_line_error(
        run(path, '--compare', str(tmp_path), '--dataset-dir',
            synthetic_dir), prefix, 'args.json does not exist')


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
def test_script_without_a_gpu_says_what_to_do(packed_result, synthetic_dir):
    _, path = packed_result
    for flags in (['--gpu', '0'], ['--device', '@cupy:0']):
        line = assert_one_line_error(
            run(path, '--dataset-dir', synthetic_dir, *flags),
            'infer_packed.py: error: ')
        if cuda.available:  # CuPy without a usable device
            assert 'finds no usable CUDA GPU' in line
        elif importlib.util.find_spec('cupy'):  # without CUDA libraries
            assert 'but CuPy cannot load CUDA (' in line
        else:
            assert 'CuPy is not installed' in line
            assert 'pip install cupy-cuda12x' in line


def test_a_numba_that_does_not_import_leaves_the_blas_engine(
        packed_result, synthetic_dir, tmp_path):
    # Installed but refusing to import (a NumPy it does not support): the
    # packed CPU engine says so in one line, the blas one runs.
    (tmp_path / 'numba').mkdir()
    (tmp_path / 'numba' / '__init__.py').write_text(
        'raise ImportError("Numba needs NumPy 2.2 or less")\n')
    _, path = packed_result
    env = {'PYTHONPATH': str(tmp_path)}
    blas = helpers.run_script('infer_packed.py', path, '--dataset-dir',
                              synthetic_dir, '--engine', 'blas', env=env)
    assert blas.returncode == 0, blas.stderr
    assert blas.stdout.startswith('{}: blas engine on the CPU'.format(path))
    assert_one_line_error(
        helpers.run_script('infer_packed.py', path, '--dataset-dir',
                           synthetic_dir, env=env),
        'need numba', '--engine blas')


def run_within(*args):
    """infer_packed.py with ``args``; one that waits (on a FIFO, say)
    fails the test instead of hanging it."""
    import subprocess
    import sys
    return subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, 'infer_packed.py')] +
        [str(a) for a in args], capture_output=True, text=True,
        env=helpers.SCRIPT_ENV, timeout=60)


def test_fifos_and_devices_are_refused_in_one_line(packed_result,
                                                   tmp_path):
    _, path = packed_result
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)  # opened for reading, it would wait for a writer
    prefix = 'infer_packed.py: error: '
    assert assert_one_line_error(run_within(fifo, '--engine', 'blas')) == \
        prefix + '{} is a FIFO, not a regular file; give a file.'.format(
            fifo)
    assert assert_one_line_error(run_within(
        path, '--images', fifo, '--engine', 'blas')) == \
        prefix + '{} is a FIFO, not a regular file; give a file.'.format(
            fifo)
    # A device that never ends is not read.
    assert assert_one_line_error(run_within(
        path, '--images', '/dev/zero', '--engine', 'blas')) == \
        prefix + '/dev/zero is a character device, not a regular file; ' \
        'give a file.'
    images, labels = helpers.synthetic_digits(5, seed=3)
    image_file, _ = helpers.write_idx(str(tmp_path), 'test', images, labels)
    assert assert_one_line_error(run_within(
        path, '--images', image_file, '--labels', fifo, '--engine',
        'blas')) == prefix + '{} is a FIFO, not a regular file; give a ' \
        'file.'.format(fifo)
