"""Data sets that are not what they claim, given to the commands: a FIFO
or a device where an IDX file should be, a FIFO for --dataset-dir, a
header that promises more than any file holds. Each command ends at
once with one line naming the file and what it is, and touches nothing."""
import os
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error

#: Seconds a command may take before it is taken to hang.
TIMEOUT = 60


def run(script, *args):
    """``script`` run with ``args`` as a user runs it, with MNIST_DIR
    unset; fails the test if it runs past :data:`TIMEOUT`."""
    env = dict(helpers.SCRIPT_ENV)
    env.pop('MNIST_DIR', None)
    try:
        return subprocess.run(
            [sys.executable, os.path.join(helpers.ROOT, script)] +
            [str(a) for a in args], capture_output=True, text=True, env=env,
            timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail('{} {} hung (more than {} s)'.format(script, args,
                                                         TIMEOUT))


def contents(directory):
    """``{path: bytes, or what it is}`` of everything under ``directory``,
    links not followed."""
    found = {}
    for folder, subfolders, names in os.walk(directory):
        for name in subfolders + names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = 'link to ' + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, 'rb') as f:
                    found[path] = f.read()
            else:
                found[path] = os.lstat(path).st_mode
    return found


TRAIN = ['--unit', 24, '--layers', 2, '--batchsize', 50, '--epoch', 1,
         '--noplot']


@pytest.fixture
def data(tmp_path):
    """A data set of raw IDX files in tmp_path/data."""
    directory = str(tmp_path / 'data')
    helpers.write_idx(directory, 'train', *helpers.synthetic_digits(100, 1),
                      gz=False)
    helpers.write_idx(directory, 'test', *helpers.synthetic_digits(50, 2),
                      gz=False)
    return directory


@pytest.mark.parametrize('name,make,kind', [
    ('train-images-idx3-ubyte', os.mkfifo, 'a FIFO'),
    ('t10k-labels-idx1-ubyte', lambda p: os.symlink('/dev/zero', p),
     'a character device'),
], ids=['fifo', 'dev-zero'])
def test_train_refuses_an_idx_file_of_another_kind(tmp_path, data, name,
                                                   make, kind):
    path = os.path.join(data, name)
    os.remove(path)
    make(path)
    before = contents(str(tmp_path))
    out = str(tmp_path / 'out')
    result = run('train_mnist.py', '--dataset-dir', data, '--out', out,
                 *TRAIN)
    line = assert_one_line_error(result, 'train_mnist.py: error: ')
    assert line == 'train_mnist.py: error: {} is {}, not a regular file; ' \
        'give a file.'.format(path, kind)
    assert contents(str(tmp_path)) == before
    assert not os.path.exists(out)


def test_train_refuses_a_dataset_dir_that_is_a_fifo(tmp_path):
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    out = str(tmp_path / 'out')
    result = run('train_mnist.py', '--dataset-dir', fifo, '--out', out,
                 *TRAIN)
    assert_one_line_error(
        result, 'train_mnist.py: error: dataset directory {} is a FIFO, not '
        'a directory; give a directory that holds the four MNIST IDX '
        'files.'.format(fifo))
    assert sorted(os.listdir(str(tmp_path))) == ['fifo']


def test_train_refuses_a_header_promising_more_than_any_file_holds(
        tmp_path, data):
    path = os.path.join(data, 'train-images-idx3-ubyte')
    with open(path, 'r+b') as f:
        f.write(b'\0\0\x08\x03' + b'\x80\0\0\0' * 3)  # 2**31 x 2**31 x 2**31
    before = contents(str(tmp_path))
    result = run('train_mnist.py', '--dataset-dir', data, '--out',
                 str(tmp_path / 'out'), *TRAIN)
    assert_one_line_error(
        result, '{} promises 2147483648 images of 2147483648x2147483648 '
        'bytes'.format(path), 'its header is corrupt')
    assert contents(str(tmp_path)) == before


@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    """A small packed network."""
    from quantized_net.packed import export as packed_export
    from quantized_net.packed import format as packed_format
    model, config = helpers.binarized_model(units=24, layers=2, seed=5)
    path = str(tmp_path_factory.mktemp('packed') / packed_format.PACKED_FILE)
    packed_format.save(path, packed_export.export(model, config))
    return path


def test_infer_packed_refuses_images_and_labels_of_another_kind(packed,
                                                                tmp_path):
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    images, labels = helpers.write_idx(
        str(tmp_path / 'data'), 'test', *helpers.synthetic_digits(20, 2),
        gz=False)
    prefix = 'infer_packed.py: error: '
    for flags, path, kind in (
            (['--images', fifo], fifo, 'a FIFO'),
            (['--images', '/dev/zero'], '/dev/zero', 'a character device'),
            (['--images', images, '--labels', fifo], fifo, 'a FIFO')):
        line = assert_one_line_error(
            run('infer_packed.py', packed, '--engine', 'blas', *flags))
        assert line == prefix + '{} is {}, not a regular file; give a ' \
            'file.'.format(path, kind)
    # The same files, as they are: read.
    result = run('infer_packed.py', packed, '--engine', 'blas', '--images',
                 images, '--labels', labels)
    assert result.returncode == 0, result.stderr
    assert '20 images' in result.stdout
