"""The SVHN reader on generated MATLAB 5.0 MAT files in the format-2
layout (written here, compressed and not, in either byte order), a
directory at hand, the verified cache and a download from a server on
127.0.0.1, the paper's validation split; and the same files damaged,
seeded byte flips included: the arrays the bytes hold, or
errors.DatasetError in one line naming the file."""
import hashlib
import os
import struct
import tracemalloc
import zlib

import numpy
import pytest

from quantized_net.errors import DatasetError
from quantized_net.training import mnist
from quantized_net.training import svhn

import helpers
from helpers import (CHAR, DOUBLE, MI_DOUBLE, MI_UINT8, UINT8,
                     mat_file, matrix, x_matrix, y_matrix)


def digits(count, seed, labels=None):
    rng = numpy.random.RandomState(seed)
    images = rng.randint(0, 256, (count, 3, 32, 32)).astype(numpy.uint8)
    if labels is None:
        labels = rng.randint(0, 10, count)
    return images, numpy.asarray(labels, numpy.uint8)


def svhn_file(images, labels, compressed=True, order='<', stored=MI_DOUBLE):
    return mat_file([x_matrix(images, order),
                     y_matrix(labels, order, stored)], compressed, order)[0]


def write(path, data):
    with open(str(path), 'wb') as f:
        f.write(data)
    return str(path)


def assert_read(got, images, labels):
    numpy.testing.assert_array_equal(got[0], images)
    numpy.testing.assert_array_equal(got[1], labels)
    assert got[0].dtype == got[1].dtype == numpy.uint8
    assert got[0].shape == (len(labels), 3, 32, 32)


IMAGES, LABELS = digits(6, 1, [0, 1, 9, 3, 0, 5])


@pytest.mark.parametrize('order', ['<', '>'], ids=['little', 'big'])
@pytest.mark.parametrize('compressed', [False, True],
                         ids=['raw', 'compressed'])
@pytest.mark.parametrize('stored', [MI_DOUBLE, MI_UINT8],
                         ids=['double', 'uint8'])
def test_reads_format_2_files(tmp_path, order, compressed, stored):
    path = write(tmp_path / 'train_32x32.mat', svhn_file(
        IMAGES, LABELS, compressed, order, stored))
    assert_read(svhn.read_mat(path), IMAGES, LABELS)


def test_the_layout_is_matlabs_column_major_and_10_is_the_digit_0(
        tmp_path):
    """A pixel at (row 1, column 2, channel 0, image 4) in MATLAB's
    order, written by hand."""
    pixels = numpy.zeros(32 * 32 * 3 * 5, numpy.uint8)
    pixels[1 + 32 * 2 + 32 * 32 * 0 + 32 * 32 * 3 * 4] = 200
    pixels[0 + 32 * 5 + 32 * 32 * 2 + 32 * 32 * 3 * 1] = 7
    labels = struct.pack('<5d', 10, 1, 2, 3, 10)
    path = write(tmp_path / 'test_32x32.mat', mat_file([
        matrix(b'X', UINT8, (32, 32, 3, 5), MI_UINT8, pixels.tobytes()),
        matrix(b'y', DOUBLE, (5, 1), MI_DOUBLE, labels)])[0])
    images, labels = svhn.read_mat(path)
    assert images[4, 0, 1, 2] == 200 and images[1, 2, 0, 5] == 7
    assert images.sum() == 207
    assert labels.tolist() == [0, 1, 2, 3, 0]


def test_other_variables_are_skipped_unread(tmp_path):
    """A char array and a cell before X, and an empty matrix: never read
    beyond their names, whatever they hold."""
    note = matrix(b'note', CHAR, (1, 4), 16, b'h\0i\0!\0!\0')
    cell = matrix(b'cells', 1, (1, 1), MI_UINT8, bytes([0xEE]) * 40)
    empty = (struct.pack('<II', 14, 0), (0, 0))
    for compressed in (False, True):
        path = write(tmp_path / 'a.mat', mat_file(
            [note, cell, empty, x_matrix(IMAGES), y_matrix(LABELS)],
            compressed)[0])
        assert_read(svhn.read_mat(path), IMAGES, LABELS)


def refused(tmp_path, data, name='train_32x32.mat'):
    path = write(tmp_path / name, data)
    with pytest.raises(DatasetError) as error:
        svhn.read_mat(path)
    message = str(error.value)
    assert '\n' not in message
    return path, message


@pytest.mark.parametrize('compressed', [False, True],
                         ids=['raw', 'compressed'])
def test_a_file_without_x_or_y(tmp_path, compressed):
    path, message = refused(tmp_path, mat_file([y_matrix(LABELS)],
                                               compressed)[0])
    assert message == ('{} holds no variable X; it is not an SVHN format-2 '
                       'file.'.format(path))
    path, message = refused(tmp_path, mat_file([x_matrix(IMAGES)],
                                               compressed)[0])
    assert message == ('{} holds no variable y; it is not an SVHN format-2 '
                       'file.'.format(path))


def test_x_of_another_type_or_shape(tmp_path):
    values = IMAGES.astype('<f8').tobytes()
    path, message = refused(tmp_path, mat_file([
        matrix(b'X', DOUBLE, (32, 32, 3, 6), MI_DOUBLE, values),
        y_matrix(LABELS)])[0])
    assert message == '{} variable X is double stored as float64, not ' \
        'uint8.'.format(path)
    path, message = refused(tmp_path, mat_file([
        matrix(b'X', UINT8, (28, 28, 3, 6), MI_UINT8, IMAGES.tobytes()[
            :28 * 28 * 3 * 6]), y_matrix(LABELS)])[0])
    assert message == '{} variable X is 28x28x3x6, not 32x32x3xN ' \
        'images.'.format(path)
    path, message = refused(tmp_path, mat_file([
        matrix(b'X', CHAR, (1, 2), 16, b'a\0b\0'), y_matrix(LABELS)])[0])
    assert message == ('{} variable X (the element at byte 128) is a char '
                       'array, not a numeric one.'.format(path))
    path, message = refused(tmp_path, mat_file([
        matrix(b'X', UINT8, (32, 32, 3, 6), MI_UINT8,
               IMAGES.tobytes(), flags=0x800), y_matrix(LABELS)])[0])
    assert message == ("{} variable X (the element at byte 128) is complex; "
                       "SVHN's are real.".format(path))


def test_y_of_another_shape_or_labels_beyond_1_to_10(tmp_path):
    path, message = refused(tmp_path, svhn_file(IMAGES[:5], LABELS))
    assert message == ('{} variable y is 6x1, not 5x1: a label for each of '
                       'its 5 images.'.format(path))
    for value, shown in ((0, '0.0'), (11, '11.0'), (2.5, '2.5')):
        labels = struct.pack('<6d', 1, 2, 3, value, 4, 5)
        path, message = refused(tmp_path, mat_file([
            x_matrix(IMAGES), matrix(b'y', DOUBLE, (6, 1), MI_DOUBLE,
                                     labels)])[0])
        assert message == ("{} has label {} (image 3); SVHN's labels are "
                           "1-10, 10 for the digit 0.".format(path, shown))


def test_a_second_x_is_refused(tmp_path):
    path, message = refused(tmp_path, mat_file([
        x_matrix(IMAGES), y_matrix(LABELS), x_matrix(IMAGES)])[0])
    first = 128 + len(x_matrix(IMAGES)[0]) + len(y_matrix(LABELS)[0])
    assert message == ('{} (the element at byte {}) holds a second variable '
                       'X.'.format(path, first))


def test_headers_of_other_formats(tmp_path):
    path, message = refused(tmp_path, b'MATLAB 5.0 MAT-file')
    assert message == ('{} is too short (19 bytes) for a MAT file header; '
                       'it is truncated.'.format(path))
    v73 = b'MATLAB 7.3 MAT-file, Platform: GLNXA64'.ljust(116) + \
        bytes(8) + struct.pack('<H', 0x0200) + b'IM'
    path, message = refused(tmp_path, v73 + bytes(512))
    assert message == ("{} is a MATLAB 7.3 (HDF5) MAT file; give SVHN's "
                       "format-2 files as published (MATLAB 5.0 MAT "
                       "files).".format(path))
    path, message = refused(tmp_path, bytes(200))
    assert message == ("{} is not a MATLAB 5.0 MAT file (its header ends "
                       "b'\\x00\\x00\\x00\\x00'); SVHN's format-2 files "
                       "are.".format(path))


def test_truncated_files(tmp_path):
    for compressed in (False, True):
        data = svhn_file(IMAGES, LABELS, compressed)
        path, message = refused(tmp_path, data[:-20])
        assert message.startswith(path + ' (the element at byte ')
        assert 'truncated' in message, message
    data = svhn_file(IMAGES, LABELS, False)
    path, message = refused(tmp_path, data[:128 + 4])
    assert message == ('{} (the element at byte 128) is cut short; the file '
                       'is truncated.'.format(path))


def test_a_compressed_stream_damaged_or_followed_by_junk(tmp_path):
    x, _ = x_matrix(IMAGES)
    packed = bytearray(zlib.compress(x))
    packed[len(packed) // 2] ^= 0xFF
    header = mat_file([])[0]
    path, message = refused(tmp_path, header + struct.pack(
        '<II', 15, len(packed)) + packed)
    assert message.startswith('{} (the element at byte 128) holds compressed '
                              'data that zlib cannot read ('.format(path))
    assert message.endswith('); the file is corrupt.')
    packed = zlib.compress(x) + b'junk'
    path, message = refused(tmp_path, header + struct.pack(
        '<II', 15, len(packed)) + packed)
    assert message == ('{} (the element at byte 128) holds bytes after its '
                       'compressed data; the file is corrupt.'.format(path))


def test_dimensions_beyond_the_limit_are_refused_before_allocating(
        tmp_path):
    """32 x 32 x 3 x 2^30 images (3 TiB) over a few bytes, raw and
    compressed: refused from the dimensions, allocating nothing of
    them."""
    count = 2 ** 30
    element = matrix(b'X', UINT8, (32, 32, 3, count), MI_UINT8,
                     bytes(16))[0]
    for compressed in (False, True):
        data = mat_file([(element, (0, 0)), y_matrix(LABELS)],
                        compressed)[0]
        tracemalloc.start()
        try:
            path, message = refused(tmp_path, data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert message == (
            '{} variable X (the element at byte 128) promises 32x32x3x{} '
            'values of 1 bytes ({} bytes), more than a variable may hold '
            '(2147483648 bytes); it is corrupt.'.format(
                path, count, 3072 * count))
        assert peak < 2 ** 22


def test_a_compressed_variable_promising_more_than_it_can_inflate_to(
        tmp_path):
    """Within the limit, but more than deflate makes of the few bytes
    there: refused before anything is inflated or allocated."""
    element = matrix(b'X', UINT8, (32, 32, 3, 500), MI_UINT8, bytes(16))[0]
    path, message = refused(tmp_path, mat_file(
        [(element, (0, 0)), y_matrix(LABELS)], True)[0])
    size = len(zlib.compress(element))
    assert message == (
        '{} variable X (the element at byte 128) promises 32x32x3x500 values '
        'of 1 bytes (1536000 bytes), more than its compressed data can hold '
        '({} bytes); it is corrupt.'.format(path, 1032 * size))


def test_values_not_matching_their_dimensions(tmp_path):
    element = matrix(b'X', UINT8, (32, 32, 3, 5), MI_UINT8,
                     IMAGES.tobytes())[0]
    path, message = refused(tmp_path, mat_file(
        [(element, (0, 0)), y_matrix(LABELS)])[0])
    assert message == (
        '{} variable X (the element at byte 128) has 18432 bytes of values, '
        'but its 32x32x3x5 values of 1 bytes need 15360; it is '
        'corrupt.'.format(path))


def test_an_element_promising_more_than_the_file_holds(tmp_path):
    data = bytearray(svhn_file(IMAGES, LABELS, False))
    data[132:136] = struct.pack('<I', 2 ** 32 - 1)
    path, message = refused(tmp_path, bytes(data))
    assert message == (
        '{} (the element at byte 128) promises 4294967295 bytes, more than '
        'the file holds after it ({}); the file is truncated.'.format(
            path, len(data) - 136))


def test_files_of_another_kind_are_named_as_such(tmp_path, fifo):
    for make, kind in ((lambda p: os.symlink(fifo, p), 'a FIFO'),
                       (lambda p: os.symlink('/dev/zero', p),
                        'a character device'),
                       (os.mkdir, 'a directory')):
        directory = tmp_path / kind.replace(' ', '_')
        directory.mkdir()
        write(directory / 'train_32x32.mat', svhn_file(IMAGES, LABELS))
        path = str(directory / 'test_32x32.mat')
        make(path)
        with pytest.raises(DatasetError) as error:
            svhn.read_svhn(str(directory))
        assert str(error.value) == (
            '{} is {}, not a regular file; give a file.'.format(path, kind))


# A directory at hand.

TRAIN = digits(40, 2, numpy.arange(40) % 10)
TEST = digits(7, 3)
EXTRA = digits(20, 4, numpy.arange(20)[::-1] % 10)


@pytest.fixture
def svhn_dir(tmp_path):
    for name, (images, labels) in (('train', TRAIN), ('test', TEST),
                                   ('extra', EXTRA)):
        write(tmp_path / (name + '_32x32.mat'), svhn_file(images, labels))
    return str(tmp_path)


def test_reads_a_directory_at_hand(svhn_dir, capsys):
    splits = svhn.read_svhn(svhn_dir)
    assert_read(splits['train'], *TRAIN)
    assert_read(splits['test'], *TEST)
    assert_read(splits['extra'], *EXTRA)
    assert capsys.readouterr().err == (
        "notice: {0}/train_32x32.mat, {0}/test_32x32.mat, {0}/extra_32x32.mat "
        "are not SVHN's (checksum differs); using them as a data set in the "
        "same layout.\n".format(svhn_dir))


def test_no_notice_for_the_published_checksums(svhn_dir, capsys):
    checksums = {}
    for split in ('train', 'test', 'extra'):
        with open(os.path.join(svhn_dir, split + '_32x32.mat'), 'rb') as f:
            checksums[split] = hashlib.md5(f.read()).hexdigest()
    svhn.read_svhn(svhn_dir, checksums=checksums)
    assert capsys.readouterr().err == ''


def test_extra_is_optional_at_hand_and_the_rest_is_not(svhn_dir,
                                                       monkeypatch):
    os.remove(os.path.join(svhn_dir, 'extra_32x32.mat'))
    monkeypatch.setenv('SVHN_DIR', svhn_dir)
    splits = svhn.read_svhn()
    assert splits['extra'] is None
    assert_read(splits['train'], *TRAIN)
    os.remove(os.path.join(svhn_dir, 'test_32x32.mat'))
    with pytest.raises(DatasetError) as error:
        svhn.read_svhn()
    assert str(error.value) == (
        'test_32x32.mat is missing from {}: SVHN (format 2) is '
        'train_32x32.mat, test_32x32.mat and, optionally, '
        'extra_32x32.mat.'.format(svhn_dir))


def test_a_dataset_dir_of_another_kind(fifo):
    with pytest.raises(DatasetError) as error:
        svhn.read_svhn(fifo)
    assert str(error.value) == (
        'dataset directory {} is a FIFO, not a directory; give a directory '
        'that holds train_32x32.mat and test_32x32.mat (SVHN format '
        '2).'.format(fifo))


def test_get_svhn_scales_as_mnist_does(svhn_dir):
    train, test, extra = svhn.get_svhn(svhn_dir)
    assert (len(train), len(test), len(extra)) == (40, 7, 20)
    x, t = train[13]
    assert x.dtype == numpy.float32 and x.shape == (3, 32, 32)
    assert t.dtype == numpy.int32 and t == 3
    numpy.testing.assert_array_equal(train._datasets[0],
                                     mnist.scaled(TRAIN[0]))
    numpy.testing.assert_array_equal(extra._datasets[1], EXTRA[1])


def test_the_validation_split_takes_the_first_of_each_class(svhn_dir):
    """30: 3 of each class, 2 from train and 1 from extra, the first of
    each class in file order; the rest of train and extra trained on."""
    assert svhn.validation_split(6000, True) == {'train': 400, 'extra': 200}
    assert svhn.validation_split(30, True) == {'train': 2, 'extra': 1}
    assert svhn.validation_split(30, False) == {'train': 2, 'extra': 0}
    train, validation, test = svhn.load_splits(svhn_dir, 30)
    assert (len(train), len(validation), len(test)) == (30, 30, 7)
    # train's labels are 0-9 in turn: its first 20 images are held out;
    # extra's are 9-0 in turn: its first 10.
    held = numpy.concatenate([TRAIN[0][:20], EXTRA[0][:10]])
    numpy.testing.assert_array_equal(validation._datasets[0],
                                     mnist.scaled(held))
    numpy.testing.assert_array_equal(
        validation._datasets[1],
        numpy.concatenate([TRAIN[1][:20], EXTRA[1][:10]]))
    kept = numpy.concatenate([TRAIN[0][20:], EXTRA[0][10:]])
    numpy.testing.assert_array_equal(train._datasets[0], mnist.scaled(kept))
    numpy.testing.assert_array_equal(test._datasets[0], mnist.scaled(TEST[0]))
    train, none, _ = svhn.load_splits(svhn_dir, 0)
    assert none is None and len(train) == 60


def test_the_papers_split_is_400_and_200_of_each_class(tmp_path):
    train = digits(4010, 5, numpy.arange(4010) % 10)
    extra = digits(2010, 6, numpy.arange(2010) % 10)
    for name, (images, labels) in (('train', train), ('test', TEST),
                                   ('extra', extra)):
        write(tmp_path / (name + '_32x32.mat'), svhn_file(images, labels))
    kept, validation, _ = svhn.load_splits(str(tmp_path))
    assert (len(kept), len(validation)) == (20, 6000)
    assert numpy.bincount(validation._datasets[1]).tolist() == [600] * 10
    numpy.testing.assert_array_equal(
        kept._datasets[0], mnist.scaled(numpy.concatenate(
            [train[0][4000:], extra[0][2000:]])))


def test_without_extra_the_split_is_trains_alone_and_said(svhn_dir,
                                                          capsys):
    os.remove(os.path.join(svhn_dir, 'extra_32x32.mat'))
    capsys.readouterr()
    train, validation, _ = svhn.load_splits(svhn_dir, 30)
    assert (len(train), len(validation)) == (20, 20)
    assert capsys.readouterr().err.endswith(
        'notice: no extra_32x32.mat at hand: the validation set is the first '
        '2 images of each class of train_32x32.mat only (20 in all).\n')


def test_validation_sizes_a_split_cannot_give(svhn_dir):
    with pytest.raises(DatasetError) as error:
        svhn.load_splits(svhn_dir, 35)
    assert str(error.value) == (
        "--validation 35 is not a multiple of 10: SVHN's validation set "
        "holds as many images of each class.")
    with pytest.raises(DatasetError) as error:
        svhn.load_splits(svhn_dir)
    assert str(error.value) == ('--validation 6000 holds out 400 images of '
                                'class 0 from train_32x32.mat, which has 4.')
    with pytest.raises(DatasetError) as error:
        svhn.load_splits(svhn_dir, 90)
    assert str(error.value) == ('--validation 90 holds out 6 images of '
                                'class 0 from train_32x32.mat, which has 4.')
    # 4 of each class from train, 2 from extra: all there is.
    with pytest.raises(DatasetError) as error:
        svhn.load_splits(svhn_dir, 60)
    assert str(error.value) == '--validation 60 leaves no training images.'


# The cache and the download, against a server on 127.0.0.1.

@pytest.fixture
def served(svhn_dir):
    files, checksums = {}, {}
    for split in ('train', 'test', 'extra'):
        name = split + '_32x32.mat'
        with open(os.path.join(svhn_dir, name), 'rb') as f:
            files['/good/' + name] = f.read()
        checksums[split] = hashlib.md5(files['/good/' + name]).hexdigest()
    with helpers.http_server(files) as (base, requests):
        yield base, checksums, requests


def test_download_is_verified_cached_and_used_again(served, tmp_path,
                                                    monkeypatch, capsys):
    monkeypatch.delenv('SVHN_DIR', raising=False)
    base, checksums, requests = served
    cache = str(tmp_path / 'cache')
    splits = svhn.read_svhn(cache_dir=cache, url=base + 'good/',
                            checksums=checksums)
    assert_read(splits['train'], *TRAIN)
    assert_read(splits['extra'], *EXTRA)
    assert sorted(os.listdir(cache)) == ['extra_32x32.mat', 'test_32x32.mat',
                                         'train_32x32.mat']
    assert requests == ['/good/train_32x32.mat', '/good/test_32x32.mat',
                        '/good/extra_32x32.mat']
    del requests[:]
    svhn.read_svhn(cache_dir=cache, url=base + 'good/', checksums=checksums)
    assert requests == []
    assert capsys.readouterr().err.count('notice: downloading') == 3


def test_a_download_that_does_not_verify_leaves_nothing(served, tmp_path,
                                                        monkeypatch):
    monkeypatch.delenv('SVHN_DIR', raising=False)
    base, checksums, _ = served
    cache = str(tmp_path / 'cache')
    wrong = dict(checksums, test='0' * 32)
    with pytest.raises(DatasetError) as error:
        svhn.read_svhn(cache_dir=cache, url=base + 'good/', checksums=wrong)
    assert str(error.value) == (
        'could not download test_32x32.mat ({}good/test_32x32.mat: checksum '
        'mismatch). Download the SVHN format-2 files by hand and pass their '
        'directory with --dataset-dir (or set SVHN_DIR).'.format(base))
    assert os.listdir(cache) == ['train_32x32.mat']


def test_the_default_cache_is_in_chainers_dataset_root():
    import chainer
    assert svhn.default_cache_dir() == os.path.join(
        chainer.dataset.get_dataset_root(), 'pfnet', 'chainer', 'svhn')


# Damaged files: seeded byte flips, truncations and junk.

CASES = 100
SMALL = digits(3, 7, [0, 4, 9])


def damage(rng, data, kind, data_regions):
    """``data`` with a seeded damage of ``kind``; a third of the flips
    fall in the header and tags before the first values, a third in the
    values."""
    data = bytearray(data)
    flipped = []
    if kind == 'flip':
        for _ in range(rng.randint(1, 4)):
            where = rng.rand()
            if where < 1 / 3 and data_regions:
                start, size = data_regions[rng.randint(len(data_regions))]
                at = start + rng.randint(size)
            elif where < 2 / 3:
                at = rng.randint(min(len(data), 128 + 64))
            else:
                at = rng.randint(len(data))
            data[at] ^= rng.randint(1, 256)
            flipped.append(at)
    elif kind == 'truncate':
        del data[rng.randint(len(data)):]
    else:
        data += rng.randint(0, 256, rng.randint(1, 64), numpy.uint8).tobytes()
    return bytes(data), flipped


def what_values_hold(data, regions):
    """The images and labels the values' bytes of an uncompressed file
    hold (regions: X's, then y's, as doubles), or None if a label is not
    1-10."""
    (x_start, x_size), (y_start, y_size) = regions
    pixels = numpy.frombuffer(data[x_start:x_start + x_size], numpy.uint8)
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 1, 3, 2)
    labels = numpy.frombuffer(data[y_start:y_start + y_size], '<f8')
    if not numpy.isin(labels, numpy.arange(1, 11)).all():
        return None
    return images, (labels % 10).astype(numpy.uint8)


@pytest.mark.parametrize('kind', ['flip', 'truncate', 'junk'])
@pytest.mark.parametrize('compressed', [False, True],
                         ids=['raw', 'compressed'])
def test_a_damaged_file_is_read_right_or_refused_in_one_line(
        tmp_path, compressed, kind):
    """A flip in the values of a raw file changes them, and the reader
    gives what they then hold (or refuses a label out of range); a flip
    in the free text of the header changes nothing; any other damage is
    refused in one line, or changes nothing the reader reads (padding,
    flags that do not matter)."""
    original, regions = mat_file([x_matrix(SMALL[0]), y_matrix(SMALL[1])],
                                 compressed)
    path = str(tmp_path / 'train_32x32.mat')
    refusals = 0
    for seed in range(CASES):
        rng = numpy.random.RandomState(seed)
        data, flipped = damage(rng, original, kind, regions)
        write(path, data)
        try:
            got = svhn.read_mat(path)
        except DatasetError as e:
            message = str(e)
            assert '\n' not in message and path in message, message
            got = None
        in_values = [at for at in flipped
                     if any(s <= at < s + n for s, n in regions)]
        in_text = [at for at in flipped if at < 124]
        if kind == 'flip' and len(in_values) + len(in_text) == len(flipped):
            # Only values or free text changed: a file as good as the
            # original, holding what its values now hold.
            answer = what_values_hold(data, regions) if regions else SMALL
            if answer is None:
                assert got is None, seed
            else:
                assert got is not None, seed
                assert_read(got, *answer)
        elif got is not None:
            assert kind == 'flip', seed
            assert_read(got, *(what_values_hold(data, regions)
                               if regions else SMALL))
        refusals += got is None
    assert refusals >= (CASES // 4 if kind == 'flip' else CASES)
