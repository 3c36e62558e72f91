import gzip
import hashlib
import os

import numpy
import pytest

import helpers
from helpers import NAMES, synthetic_digits, write_idx
from quantized_net.training import mnist
from quantized_net.errors import DatasetError

ALL_NAMES = [name for pair in NAMES.values() for name in pair]


def canonical(directory, name):
    return os.path.join(directory, name + '.gz')


def test_reads_gzip_dir_like_chainer_get_mnist(synthetic_dir, capsys):
    train, test = mnist.get_mnist(synthetic_dir)
    assert len(train) == 600 and len(test) == 200
    x, t = train[0]
    assert x.dtype == numpy.float32 and x.shape == (784,)
    assert t.dtype == numpy.int32
    images, labels = synthetic_digits(600, seed=1)
    expected = images.reshape(600, 784).astype(numpy.float32)
    expected *= 1. / 255.  # what chainer.datasets.get_mnist() computes
    numpy.testing.assert_array_equal(train._datasets[0], expected)
    numpy.testing.assert_array_equal(train._datasets[1], labels)
    assert 0 <= train._datasets[0].min() and train._datasets[0].max() <= 1
    # Not MNIST's bytes: a notice names the files, no error.
    err = capsys.readouterr().err
    assert 'notice:' in err and 'not the canonical MNIST' in err


def test_reads_the_8_bit_pixels_as_they_are(synthetic_dir):
    (train_images, train_labels), (test_images, _) = \
        mnist.read_mnist(synthetic_dir)
    images, labels = synthetic_digits(600, seed=1)
    assert train_images.dtype == numpy.uint8
    numpy.testing.assert_array_equal(train_images, images.reshape(600, 784))
    numpy.testing.assert_array_equal(train_labels, labels)
    assert test_images.shape == (200, 784)


def test_reads_raw_files(tmp_path):
    directory = str(tmp_path)
    write_idx(directory, 'train', *synthetic_digits(30, 1), gz=False)
    write_idx(directory, 'test', *synthetic_digits(20, 2), gz=False)
    train, test = mnist.get_mnist(directory)
    assert (len(train), len(test)) == (30, 20)


def test_mnist_dir_environment_variable(synthetic_dir, monkeypatch):
    monkeypatch.setenv('MNIST_DIR', synthetic_dir)
    train, _ = mnist.get_mnist()
    assert len(train) == 600


def test_no_notice_for_matching_checksums(synthetic_dir, capsys):
    checksums = {}
    for name in ALL_NAMES:
        with open(canonical(synthetic_dir, name), 'rb') as f:
            gz = f.read()
        checksums[name] = ('0' * 32, hashlib.sha256(
            gzip.decompress(gz)).hexdigest())
    mnist.get_mnist(synthetic_dir, checksums=checksums)
    assert 'notice' not in capsys.readouterr().err


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        mnist.get_mnist(str(tmp_path / 'nowhere'))


def test_missing_file_is_named(synthetic_dir):
    os.remove(canonical(synthetic_dir, 't10k-labels-idx1-ubyte'))
    with pytest.raises(DatasetError, match=r't10k-labels-idx1-ubyte is '
                       r'missing .*t10k-labels-idx1-ubyte\.gz or '
                       r't10k-labels-idx1-ubyte'):
        mnist.get_mnist(synthetic_dir)


def test_a_file_of_another_kind_is_named_as_such(synthetic_dir, fifo):
    images = canonical(synthetic_dir, 'train-images-idx3-ubyte')
    labels = canonical(synthetic_dir, 't10k-labels-idx1-ubyte')
    for make, kind in ((lambda p: os.symlink(fifo, p), 'a FIFO'),
                       (lambda p: os.symlink('/dev/zero', p),
                        'a character device'),
                       (os.mkdir, 'a directory')):
        for path in (images, labels):
            os.rename(path, path + '.saved')
            make(path)
            with pytest.raises(DatasetError) as error:
                mnist.get_mnist(synthetic_dir)
            assert str(error.value) == (
                '{} is {}, not a regular file; give a file.'.format(
                    path, kind))
            (os.rmdir if os.path.isdir(path) and not os.path.islink(path)
             else os.remove)(path)
            os.rename(path + '.saved', path)


def test_a_fifo_is_not_taken_for_a_missing_file(tmp_path):
    directory = str(tmp_path)
    write_idx(directory, 'train', *synthetic_digits(30, 1), gz=False)
    write_idx(directory, 'test', *synthetic_digits(20, 2), gz=False)
    path = os.path.join(directory, 'train-labels-idx1-ubyte')
    os.remove(path)
    os.mkfifo(path)
    with pytest.raises(DatasetError, match='^{} is a FIFO, not a regular '
                       'file; give a file.$'.format(path)):
        mnist.read_mnist(directory)


def test_a_dangling_link_is_named(synthetic_dir):
    path = canonical(synthetic_dir, 'train-labels-idx1-ubyte')
    os.remove(path)
    os.symlink('gone.gz', path)
    with pytest.raises(DatasetError, match='^{} is a symbolic link to gone.gz,'
                       ' which does not exist.$'.format(path)):
        mnist.read_mnist(synthetic_dir)


def test_a_dataset_dir_of_another_kind_is_named_as_such(tmp_path, fifo):
    with pytest.raises(DatasetError, match='^dataset directory {} is a FIFO, '
                       'not a directory; give a directory'.format(fifo)):
        mnist.read_mnist(fifo)
    a_file = tmp_path / 'file'
    a_file.write_bytes(b'')
    with pytest.raises(DatasetError, match='^dataset directory {} is a '
                       'regular file, not a directory'.format(a_file)):
        mnist.read_mnist(str(a_file))


def test_read_images_and_labels_refuse_what_is_no_regular_file(fifo):
    for read in (mnist.read_images, mnist.read_labels):
        with pytest.raises(DatasetError, match='^{} is a FIFO, not a regular '
                           'file; give a file.$'.format(fifo)):
            read(fifo)
        with pytest.raises(DatasetError, match='^/dev/zero is a character '
                           'device, not a regular file; give a file.$'):
            read('/dev/zero')
        with pytest.raises(DatasetError, match='does not exist'):
            read(fifo + '.nowhere')


def test_read_images_and_labels(tmp_path):
    images, labels = synthetic_digits(7, 3)
    for gz in (False, True):
        directory = str(tmp_path / str(gz))
        images_path, labels_path = write_idx(directory, 'test', images,
                                             labels, gz=gz)
        numpy.testing.assert_array_equal(mnist.read_images(images_path),
                                         images.reshape(7, 784))
        numpy.testing.assert_array_equal(mnist.read_labels(labels_path),
                                         labels)


def rewrite(path, change):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(change(data))


def test_truncated_gzip(synthetic_dir):
    path = canonical(synthetic_dir, 'train-images-idx3-ubyte')
    rewrite(path, lambda d: d[:len(d) // 2])
    with pytest.raises(DatasetError, match='train-images-idx3-ubyte.gz is '
                       'not a readable gzip file.*truncated or corrupt'):
        mnist.get_mnist(synthetic_dir)


def test_corrupt_gzip(synthetic_dir):
    path = canonical(synthetic_dir, 'train-images-idx3-ubyte')

    def flip(data):
        middle = len(data) // 2
        flipped = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        return data[:middle] + flipped + data[middle + 64:]
    rewrite(path, flip)
    with pytest.raises(DatasetError, match='not a readable gzip file'):
        mnist.get_mnist(synthetic_dir)


def test_truncated_raw_images(tmp_path):
    directory = str(tmp_path)
    write_idx(directory, 'train', *synthetic_digits(30, 1), gz=False)
    write_idx(directory, 'test', *synthetic_digits(20, 2), gz=False)
    path = os.path.join(directory, 't10k-images-idx3-ubyte')
    rewrite(path, lambda d: d[:-100])
    with pytest.raises(DatasetError, match=r't10k-images-idx3-ubyte should '
                       r'be 15696 bytes for 20 images but is 15596; it is '
                       r'truncated'):
        mnist.get_mnist(directory)


def test_trailing_junk(tmp_path):
    directory = str(tmp_path)
    write_idx(directory, 'train', *synthetic_digits(30, 1), gz=False)
    write_idx(directory, 'test', *synthetic_digits(20, 2), gz=False)
    rewrite(os.path.join(directory, 'train-labels-idx1-ubyte'),
            lambda d: d + b'\0')
    with pytest.raises(DatasetError, match='followed by junk'):
        mnist.get_mnist(directory)


def test_truncated_header(synthetic_dir):
    path = canonical(synthetic_dir, 'train-labels-idx1-ubyte')
    rewrite(path, lambda d: gzip.compress(gzip.decompress(d)[:5]))
    with pytest.raises(DatasetError, match='too short .* label header'):
        mnist.get_mnist(synthetic_dir)


def test_wrong_magic_images_and_labels_swapped(synthetic_dir):
    images = canonical(synthetic_dir, 'train-images-idx3-ubyte')
    labels = canonical(synthetic_dir, 'train-labels-idx1-ubyte')
    os.rename(images, images + '.tmp')
    os.rename(labels, images)
    os.rename(images + '.tmp', labels)
    with pytest.raises(DatasetError, match=r'train-images-idx3-ubyte.gz is '
                       r'not an IDX image file: magic number 0x00000801, '
                       r'expected 0x00000803'):
        mnist.get_mnist(synthetic_dir)


def test_wrong_image_size(synthetic_dir):
    write_idx(synthetic_dir, 'test', numpy.zeros((5, 32, 32), numpy.uint8),
              numpy.zeros(5, numpy.uint8))
    with pytest.raises(DatasetError, match='holds 32x32 images'):
        mnist.get_mnist(synthetic_dir)


def test_counts_disagree(synthetic_dir):
    images, labels = synthetic_digits(20, 2)
    write_idx(synthetic_dir, 'test', images, labels[:19])
    with pytest.raises(DatasetError, match='holds 20 images but .* holds 19 '
                       'labels'):
        mnist.get_mnist(synthetic_dir)


def test_label_out_of_range(synthetic_dir):
    images, labels = synthetic_digits(20, 2)
    labels[3] = 26
    write_idx(synthetic_dir, 'test', images, labels)
    with pytest.raises(DatasetError, match='has label 26; the network has '
                       '10 classes'):
        mnist.get_mnist(synthetic_dir)


@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
def test_real_mnist_matches_checksums_and_counts(capsys):
    train, test = mnist.get_mnist(os.environ['MNIST_DIR'])
    assert (len(train), len(test)) == (60000, 10000)
    assert 'notice' not in capsys.readouterr().err
    numpy.testing.assert_array_equal(
        numpy.bincount(test._datasets[1]),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


# Download path, against a server on 127.0.0.1.

@pytest.fixture
def served(synthetic_dir):
    """An HTTP server with three mirrors: /404/ answers 404, /corrupt/
    serves bytes that are no gzip, /good/ serves the synthetic files; and
    the checksums of those files."""
    files = {}
    checksums = {}
    for name in ALL_NAMES:
        with open(canonical(synthetic_dir, name), 'rb') as f:
            files[name + '.gz'] = f.read()
        checksums[name] = (hashlib.md5(files[name + '.gz']).hexdigest(),
                           '0' * 64)
    bodies = {}
    for name, body in files.items():
        bodies['/good/' + name] = body
        bodies['/corrupt/' + name] = lambda: os.urandom(2000)
        bodies['/wrongfile/' + name] = gzip.compress(
            b'not the expected file')
    with helpers.http_server(bodies) as (base, requests):
        yield base, checksums, requests


def test_download_falls_through_to_a_good_mirror(served, tmp_path,
                                                 monkeypatch, capsys):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, requests = served
    cache = str(tmp_path / 'cache')
    mirrors = [base + '404/', base + 'corrupt/', base + 'good/']
    train, test = mnist.get_mnist(cache_dir=cache, mirrors=mirrors,
                                  checksums=checksums)
    assert (len(train), len(test)) == (600, 200)
    assert sorted(os.listdir(cache)) == sorted(n + '.gz' for n in ALL_NAMES)
    assert len(requests) == 12
    assert 'notice: downloading ' + base + '404/train-images' in \
        capsys.readouterr().err
    # A second call is served from the verified cache.
    del requests[:]
    mnist.get_mnist(cache_dir=cache, mirrors=mirrors,
                    checksums=checksums)
    assert requests == []


def test_download_all_mirrors_bad(served, tmp_path, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, _ = served
    cache = str(tmp_path / 'cache')
    mirrors = [base + '404/', base + 'corrupt/', base + 'wrongfile/',
               'http://127.0.0.1:1/']
    with pytest.raises(DatasetError) as error:
        mnist.get_mnist(cache_dir=cache, mirrors=mirrors,
                        checksums=checksums)
    message = str(error.value)
    assert 'could not download train-images-idx3-ubyte.gz' in message
    assert '404/train-images-idx3-ubyte.gz: HTTP 404' in message
    assert 'corrupt/train-images-idx3-ubyte.gz: not a gzip file' in message
    assert 'wrongfile/train-images-idx3-ubyte.gz: checksum mismatch' in \
        message
    assert '--dataset-dir' in message
    assert '\n' not in message  # one line, every mirror in it
    assert os.listdir(cache) == []  # nothing half-written


def test_download_larger_than_any_mnist_file_is_not_taken(
        served, tmp_path, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    monkeypatch.setattr(mnist, 'MAX_DOWNLOAD_BYTES', 100)
    base, checksums, _ = served
    cache = str(tmp_path / 'cache')
    with pytest.raises(DatasetError, match=r'good/train-images-idx3-ubyte\.gz'
                       r': more than 100 bytes, larger than any MNIST file'):
        mnist.get_mnist(cache_dir=cache, mirrors=[base + 'good/'],
                        checksums=checksums)
    assert os.listdir(cache) == []


def test_cache_entry_that_is_a_link_is_not_written_through(
        served, tmp_path, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, _ = served
    cache = tmp_path / 'cache'
    cache.mkdir()
    entry = cache / 'train-images-idx3-ubyte.gz'
    target = tmp_path / 'elsewhere.gz'
    os.symlink(str(target), str(entry))  # to nothing yet
    with pytest.raises(DatasetError) as error:
        mnist.get_mnist(cache_dir=str(cache), mirrors=[base + 'good/'],
                        checksums=checksums)
    assert str(error.value) == (
        'cannot write to the MNIST cache {0}: {0}/train-images-idx3-ubyte.gz'
        ' is a symbolic link; it was not replaced. Remove it, or write '
        'elsewhere. Set CHAINER_DATASET_ROOT to a writable directory, or '
        'pass --dataset-dir.'.format(cache))
    assert not os.path.lexists(str(target))
    assert os.listdir(str(cache)) == [entry.name]
    # A link to a file that fails verification: the link goes, the file it
    # named stays as it was.
    target.write_bytes(b'precious')
    train, _ = mnist.get_mnist(cache_dir=str(cache),
                               mirrors=[base + 'good/'], checksums=checksums)
    assert len(train) == 600
    assert target.read_bytes() == b'precious'
    assert not entry.is_symlink() and entry.is_file()


def test_cache_entry_that_is_a_fifo_is_neither_read_nor_replaced(
        served, tmp_path, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, requests = served
    cache = tmp_path / 'cache'
    cache.mkdir()
    entry = cache / 't10k-labels-idx1-ubyte.gz'
    mnist.get_mnist(cache_dir=str(cache), mirrors=[base + 'good/'],
                    checksums=checksums)
    entry.unlink()
    os.mkfifo(str(entry))
    del requests[:]
    with pytest.raises(DatasetError, match='^cannot write to the MNIST cache '
                       '{0}: {0}/t10k-labels-idx1-ubyte.gz is a FIFO; it was '
                       'not replaced.'.format(cache)):
        mnist.get_mnist(cache_dir=str(cache), mirrors=[base + 'good/'],
                        checksums=checksums)
    assert requests == []  # refused before anything is fetched
    assert entry.is_fifo()


def test_full_disk_under_the_cache_is_one_line(served, tmp_path,
                                               monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, _ = served
    cache = str(tmp_path / 'cache')

    def full(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(DatasetError, match=r'^cannot write to the MNIST cache '
                       r'.*cache: cannot write .*train-images-idx3-ubyte\.gz: '
                       r'No space left on device\. Set CHAINER_DATASET_ROOT'):
        mnist.get_mnist(cache_dir=cache, mirrors=[base + 'good/'],
                        checksums=checksums)
    assert os.listdir(cache) == []  # no temporary file left


def test_corrupt_cache_is_downloaded_again(served, tmp_path, monkeypatch,
                                           capsys):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    base, checksums, requests = served
    cache = str(tmp_path / 'cache')
    mnist.get_mnist(cache_dir=cache, mirrors=[base + 'good/'],
                    checksums=checksums)
    rewrite(canonical(cache, 'train-labels-idx1-ubyte'), lambda d: d[:-9])
    del requests[:]
    capsys.readouterr()
    train, _ = mnist.get_mnist(cache_dir=cache,
                               mirrors=[base + 'good/'],
                               checksums=checksums)
    assert len(train) == 600
    assert requests == ['/good/train-labels-idx1-ubyte.gz']
    assert 'fails verification' in capsys.readouterr().err


def test_unwritable_cache(tmp_path, monkeypatch):
    monkeypatch.delenv('MNIST_DIR', raising=False)
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(DatasetError, match='cannot create the MNIST cache'):
        mnist.get_mnist(cache_dir=str(blocker / 'cache'),
                        mirrors=['http://127.0.0.1:1/'])


def test_default_cache_is_in_chainer_dataset_root():
    import chainer
    assert mnist.default_cache_dir() == os.path.join(
        chainer.dataset.get_dataset_root(), 'pfnet', 'chainer', 'mnist')


def test_load_splits_holds_out_the_last_training_images(synthetic_dir):
    train, test = mnist.get_mnist(synthetic_dir)
    kept, held_out, same_test = mnist.load_splits(synthetic_dir, 100)
    assert (len(kept), len(held_out), len(same_test)) == (500, 100, 200)
    numpy.testing.assert_array_equal(held_out[0][0], train[500][0])
    numpy.testing.assert_array_equal(kept[499][0], train[499][0])
    kept, none, _ = mnist.load_splits(synthetic_dir, 0)
    assert none is None and len(kept) == 600


def test_load_splits_refuses_to_hold_out_everything(synthetic_dir):
    with pytest.raises(DatasetError, match='--validation 600 leaves no '
                       'training images'):
        mnist.load_splits(synthetic_dir, 600)
