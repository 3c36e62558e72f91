"""The IDX reader against damaged and hostile files: seeded byte flips,
truncations and appended junk on small IDX files, raw and gzipped, and
headers that promise more than any file holds. Each read gives the
arrays the bytes hold, or errors.DatasetError in one line naming the
file; never another exception, and never more memory than the file's
promise."""
import gzip
import math
import os
import struct
import time
import tracemalloc
import zlib

import numpy
import pytest

from helpers import NAMES, idx_images, idx_labels, synthetic_digits
from quantized_net.errors import DatasetError
from quantized_net.training import mnist

#: Seeded cases per (kind, compression, damage): 4 x 3 x 30 = 360 files
#: read through read_images/read_labels, and 120 through read_mnist.
CASES = 30
IMAGES, LABELS = synthetic_digits(4, seed=3)
ORIGINAL = {'image': idx_images(IMAGES), 'label': idx_labels(LABELS)}
READERS = {'image': mnist.read_images, 'label': mnist.read_labels}


def expected(data, gz, kind):
    """What the bytes ``data`` hold, by the IDX layout, as an independent
    reading of them: the array, or None where the reader must refuse."""
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    header = 16 if kind == 'image' else 8
    if len(data) < header:
        return None
    magic, *shape = struct.unpack('>{}I'.format(header // 4), data[:header])
    if magic != (2051 if kind == 'image' else 2049) or shape[0] == 0 or \
            len(data) != header + math.prod(shape):
        return None
    if kind == 'image' and shape[1:] != [28, 28]:
        return None
    array = numpy.frombuffer(data, numpy.uint8, offset=header)
    if kind == 'label':
        return None if array.max() >= 10 else array
    return array.reshape(shape[0], 784)


def damaged(rng, data, damage):
    """``data`` with a seeded ``damage``: 'flip' changes 1 to 4 bytes
    (half the time within the first 24, where the headers are), 'truncate'
    cuts it short, 'junk' appends 1 to 64 bytes."""
    data = bytearray(data)
    if damage == 'flip':
        for _ in range(rng.randint(1, 5)):
            end = min(len(data), 24) if rng.rand() < 0.5 else len(data)
            data[rng.randint(end)] ^= rng.randint(1, 256)
    elif damage == 'truncate':
        del data[rng.randint(len(data)):]
    else:
        data += rng.randint(0, 256, rng.randint(1, 65), numpy.uint8).tobytes()
    return bytes(data)


def assert_read_as_expected(read, path, data, gz, kind):
    """``read()`` gives what ``data`` holds, or one line naming ``path``."""
    answer = expected(data, gz, kind)
    try:
        array = read()
    except DatasetError as e:
        message = str(e)
        assert answer is None, message
        assert '\n' not in message and path in message, message
        return message
    assert answer is not None
    numpy.testing.assert_array_equal(array, answer)
    return None


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'junk'])
@pytest.mark.parametrize('gz', [False, True], ids=['raw', 'gz'])
@pytest.mark.parametrize('kind', ['image', 'label'])
def test_damaged_file_is_read_right_or_refused_in_one_line(
        tmp_path, kind, gz, damage):
    path = str(tmp_path / ('file' + ('.gz' if gz else '')))
    original = ORIGINAL[kind]
    refused = 0
    for seed in range(CASES):
        rng = numpy.random.RandomState(seed)
        source = gzip.compress(original, mtime=0) if gz else original
        data = damaged(rng, source, damage)
        with open(path, 'wb') as f:
            f.write(data)
        refused += assert_read_as_expected(
            lambda: READERS[kind](path), path, data, gz, kind) is not None
    assert refused >= CASES // 3  # the damage was seen, mostly


@pytest.mark.parametrize('gz', [False, True], ids=['raw', 'gz'])
def test_damaged_file_in_a_dataset_dir(tmp_path, gz, capsys):
    """read_mnist(directory) with one of the four files damaged."""
    directory = str(tmp_path)
    originals = {}
    for split, n, seed in (('train', 5, 1), ('test', 3, 2)):
        images, labels = synthetic_digits(n, seed)
        for name, data in zip(NAMES[split],
                              (idx_images(images), idx_labels(labels))):
            originals[name] = data
    names = sorted(originals)

    def write(name, data):
        with open(os.path.join(directory, name + ('.gz' if gz else '')),
                  'wb') as f:
            f.write(gzip.compress(data, mtime=0) if gz else data)
    for name in names:
        write(name, originals[name])
    for seed in range(2 * CASES):
        rng = numpy.random.RandomState(1000 + seed)
        name = names[seed % 4]
        kind = 'label' if 'labels' in name else 'image'
        source = gzip.compress(originals[name], mtime=0) if gz \
            else originals[name]
        data = damaged(rng, source, ('flip', 'truncate', 'junk')[seed % 3])
        path = os.path.join(directory, name + ('.gz' if gz else ''))
        with open(path, 'wb') as f:
            f.write(data)
        answer = expected(data, gz, kind)
        try:
            (train, test) = mnist.read_mnist(directory)
        except DatasetError as e:
            message = str(e)
            assert '\n' not in message and path in message, message
            # Refused for a fault of that file, or a count that no longer
            # matches its pair's.
            if answer is not None:
                assert 'they are not a pair' in message, message
        else:
            assert answer is not None
            got = dict(zip((NAMES['train'] + NAMES['test']),
                           (train + test)))[name]
            numpy.testing.assert_array_equal(got, answer)
        write(name, originals[name])
    capsys.readouterr()


def header(kind, *dimensions):
    magic = 2051 if kind == 'image' else 2049
    return struct.pack('>{}I'.format(1 + len(dimensions)), magic,
                       *dimensions)


PROMISES = [
    ('image', (2 ** 31, 2 ** 31, 2 ** 31)),
    ('image', (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1)),
    ('image', (2 ** 32 - 1, 28, 28)),
    # The fewest images beyond the limit.
    ('image', ((mnist.MAX_IDX_BYTES - 16) // 784 + 1, 28, 28)),
    ('label', (2 ** 32 - 1,)),
]


@pytest.mark.parametrize('gz', [False, True], ids=['raw', 'gz'])
@pytest.mark.parametrize('kind,dimensions', PROMISES)
def test_header_promising_more_than_any_file_holds(tmp_path, kind,
                                                   dimensions, gz):
    path = str(tmp_path / ('promise' + ('.gz' if gz else '')))
    data = header(kind, *dimensions) + bytes(100)
    with open(path, 'wb') as f:
        f.write(gzip.compress(data) if gz else data)
    size = (16 if kind == 'image' else 8) + math.prod(dimensions)
    with pytest.raises(DatasetError) as error:
        READERS[kind](path)
    assert str(error.value) == (
        '{} promises {} {}s of {} bytes ({} bytes in all), more than an IDX '
        'file may hold ({} bytes); its header is corrupt. Replace it with a '
        'good copy.'.format(path, dimensions[0], kind,
                            'x'.join(map(str, dimensions[1:])) or 1, size,
                            mnist.MAX_IDX_BYTES))


@pytest.mark.parametrize('gz', [False, True], ids=['raw', 'gz'])
def test_a_lying_header_costs_only_what_the_file_holds(tmp_path, gz):
    """A header that promises 800 MB, within the limit, over 4 images:
    refused as truncated, having allocated about what the file holds."""
    count = 2 ** 20
    data = header('image', count, 28, 28) + IMAGES.tobytes()
    path = str(tmp_path / ('lying' + ('.gz' if gz else '')))
    with open(path, 'wb') as f:
        f.write(gzip.compress(data) if gz else data)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as error:
            mnist.read_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == (
        '{} should be {} bytes for {} images but is {}; it is truncated. '
        'Replace it with a good copy.'.format(path, 16 + count * 784, count,
                                              len(data)))
    assert peak < 2 ** 22


def test_gzip_bomb_is_not_decompressed_beyond_its_promise(tmp_path):
    """8 MiB of zeros, compressed to some 8 KiB, behind a header that
    promises one image."""
    data = header('image', 1, 28, 28) + bytes(2 ** 23)
    path = str(tmp_path / 'bomb.gz')
    with open(path, 'wb') as f:
        f.write(gzip.compress(data, 9))
    assert os.path.getsize(path) < 2 ** 14
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DatasetError) as error:
            mnist.read_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5  # about a millisecond
    assert str(error.value) == (
        '{} should be 800 bytes for 1 images but is more; it is followed by '
        'junk. Replace it with a good copy.'.format(path))
    assert peak < 2 ** 22


def test_gzip_file_larger_than_its_promise_is_not_read(tmp_path):
    """A whole gzip stream of one image, padded with zeros that gzip
    would skip one at a time: refused from its size alone."""
    data = gzip.compress(header('image', 1, 28, 28) + bytes(784))
    path = str(tmp_path / 'padded.gz')
    with open(path, 'wb') as f:
        f.write(data + bytes(mnist.GZIP_ALLOWANCE + 1000))
    size = os.path.getsize(path)
    with pytest.raises(DatasetError) as error:
        mnist.read_images(path)
    assert str(error.value) == (
        '{} is {} bytes, more than gzip makes of 1 images (800 bytes); it is '
        'followed by junk. Replace it with a good copy.'.format(path, size))


def test_concatenated_gzip_members_are_one_file(tmp_path):
    data = ORIGINAL['image']
    path = str(tmp_path / 'members.gz')
    with open(path, 'wb') as f:
        f.write(gzip.compress(data[:100]) + gzip.compress(data[100:]))
    numpy.testing.assert_array_equal(mnist.read_images(path),
                                     IMAGES.reshape(4, 784))
