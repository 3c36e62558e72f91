"""The CIFAR-10 reader on generated files in the binary version's real
layout: batch files, and the tar.gz archive as its authors publish it;
a directory at hand, the verified cache and a download from a server on
127.0.0.1; and the same files damaged, seeded byte flips included: the
arrays the bytes hold, or errors.DatasetError in one line naming the
file."""
import gzip
import hashlib
import io
import os
import tarfile
import zlib

import numpy
import pytest

import helpers
from quantized_net.errors import DatasetError
from quantized_net.training import cifar10
from quantized_net.training import mnist

FOLDER = 'cifar-10-batches-bin'


def batch(records, seed):
    """``(images (N, 3, 32, 32), labels (N,))``, uint8, seeded."""
    rng = numpy.random.RandomState(seed)
    return (rng.randint(0, 256, (records, 3, 32, 32)).astype(numpy.uint8),
            rng.randint(0, 10, records).astype(numpy.uint8))


def batch_bytes(images, labels):
    """The records of the binary version: a label byte, then the red,
    green and blue planes, each row by row."""
    records = numpy.empty((len(labels), 3073), numpy.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(len(labels), 3072)
    return records.tobytes()


#: Seven images a batch, the training batches' labels then the test's.
BATCHES = {name: batch(7, seed) for seed, name in enumerate(cifar10.BATCHES)}
TRAIN_IMAGES = numpy.concatenate([BATCHES[n][0]
                                  for n in cifar10.TRAIN_BATCHES])
TRAIN_LABELS = numpy.concatenate([BATCHES[n][1]
                                  for n in cifar10.TRAIN_BATCHES])


def tar_bytes(members, format=tarfile.GNU_FORMAT):
    """A tar archive of ``members`` (name -> bytes, or None for a
    folder), as tar writes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=format) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1244000000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def published_members(batches=BATCHES):
    """The archive's members in the published order: its folder, the
    metadata, the batches, a readme."""
    members = {FOLDER: None,
               FOLDER + '/batches.meta.txt': b'airplane\nautomobile\n'}
    for name in cifar10.BATCHES:
        members[FOLDER + '/' + name] = batch_bytes(*batches[name])
    members[FOLDER + '/readme.html'] = b'<html></html>'
    return members


ARCHIVE_TAR = tar_bytes(published_members())
ARCHIVE = gzip.compress(ARCHIVE_TAR, mtime=0)


def write(path, data):
    with open(str(path), 'wb') as f:
        f.write(data)
    return str(path)


def assert_arrays(got, batches=BATCHES):
    (train_images, train_labels), (test_images, test_labels) = got
    train = [batches[name] for name in cifar10.TRAIN_BATCHES]
    numpy.testing.assert_array_equal(
        train_images, numpy.concatenate([images for images, _ in train]))
    numpy.testing.assert_array_equal(
        train_labels, numpy.concatenate([labels for _, labels in train]))
    numpy.testing.assert_array_equal(test_images, batches['test_batch.bin'][0])
    numpy.testing.assert_array_equal(test_labels, batches['test_batch.bin'][1])
    assert train_images.dtype == numpy.uint8
    assert train_images.shape == (35, 3, 32, 32)


@pytest.fixture
def archive_dir(tmp_path):
    write(tmp_path / cifar10.ARCHIVE, ARCHIVE)
    return str(tmp_path)


@pytest.fixture
def batches_dir(tmp_path):
    for name, (images, labels) in BATCHES.items():
        write(tmp_path / name, batch_bytes(images, labels))
    return str(tmp_path)


def test_the_layout_is_the_binary_versions():
    assert cifar10.IMAGE_SHAPE == (3, 32, 32) and cifar10.N_CLASSES == 10
    assert cifar10.BATCH_BYTES == 30730000
    assert cifar10.URL == \
        'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
    assert cifar10.MD5 == 'c32a1d4ab5d03f1284b67883e8d87530'
    # One record: the label, then pixel (channel, row, column) at
    # 1 + 1024 channel + 32 row + column.
    images, labels = batch(1, 5)
    record = batch_bytes(images, labels)
    assert record[0] == labels[0]
    assert record[1 + 1024 * 2 + 32 * 3 + 4] == images[0, 2, 3, 4]


def test_reads_the_archive_as_published(archive_dir, capsys):
    assert_arrays(cifar10.read_cifar10(archive_dir))
    assert capsys.readouterr().err == (
        'notice: {}/cifar-10-binary.tar.gz is not the canonical CIFAR-10 '
        'archive (checksum differs); using it as a data set in the same '
        'layout.\n'.format(archive_dir))


def test_reads_an_archive_in_the_posix_layout(tmp_path):
    path = write(tmp_path / cifar10.ARCHIVE, gzip.compress(
        tar_bytes(published_members(), tarfile.USTAR_FORMAT)))
    assert_arrays(cifar10.read_cifar10(str(tmp_path)))
    got = cifar10.read_archive(path)
    assert sorted(got) == sorted(cifar10.BATCHES)


def test_get_cifar10_scales_as_mnist_does(archive_dir):
    train, test = cifar10.get_cifar10(archive_dir)
    assert (len(train), len(test)) == (35, 7)
    x, t = train[8]
    assert x.dtype == numpy.float32 and x.shape == (3, 32, 32)
    assert t.dtype == numpy.int32 and t == TRAIN_LABELS[8]
    expected = TRAIN_IMAGES.astype(numpy.float32) * numpy.float32(1 / 255)
    numpy.testing.assert_array_equal(train._datasets[0], expected)
    numpy.testing.assert_array_equal(train._datasets[0],
                                     mnist.scaled(TRAIN_IMAGES))
    numpy.testing.assert_array_equal(train._datasets[1], TRAIN_LABELS)


def test_reads_the_batch_files_themselves(batches_dir, capsys):
    assert_arrays(cifar10.read_cifar10(batches_dir))
    err = capsys.readouterr().err
    assert err.startswith('notice: {}/data_batch_1.bin, '.format(batches_dir))
    assert err.endswith('test_batch.bin hold fewer than the 10000 images of '
                        'a CIFAR-10 batch; using them as a data set in the '
                        'CIFAR-10 layout.\n')


def test_reads_the_batches_in_the_archives_folder(tmp_path, monkeypatch):
    folder = tmp_path / FOLDER
    folder.mkdir()
    for name, (images, labels) in BATCHES.items():
        write(folder / name, batch_bytes(images, labels))
    monkeypatch.setenv('CIFAR10_DIR', str(tmp_path))
    assert_arrays(cifar10.read_cifar10())


def test_read_batch(tmp_path):
    images, labels = BATCHES['data_batch_3.bin']
    got = cifar10.read_batch(write(tmp_path / 'b', batch_bytes(images,
                                                               labels)))
    numpy.testing.assert_array_equal(got[0], images)
    numpy.testing.assert_array_equal(got[1], labels)


def test_a_missing_batch_is_named(batches_dir):
    os.remove(os.path.join(batches_dir, 'data_batch_4.bin'))
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(batches_dir)
    assert str(error.value) == (
        'data_batch_4.bin is missing from {}: CIFAR-10 (binary version) is '
        'data_batch_1.bin to data_batch_5.bin and test_batch.bin.'.format(
            batches_dir))


def test_nothing_there(tmp_path):
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(str(tmp_path))
    assert str(error.value) == (
        'CIFAR-10 is missing from {0}: expected data_batch_1.bin to '
        'data_batch_5.bin and test_batch.bin, in it or in '
        'cifar-10-batches-bin/, or cifar-10-binary.tar.gz (the binary '
        'version).'.format(tmp_path))


def test_the_python_version_is_never_read(tmp_path):
    pickled = write(tmp_path / 'cifar-10-python.tar.gz', gzip.compress(
        tar_bytes({'cifar-10-batches-py/data_batch_1': b'\x80\x02}q\x00.'})))
    with pytest.raises(DatasetError, match='; {} is the Python version '
                       r'\(pickled\), which is never read\.$'.format(
                           pickled)):
        cifar10.read_cifar10(str(tmp_path))
    os.rename(pickled, str(tmp_path / cifar10.ARCHIVE))
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(str(tmp_path))
    assert str(error.value) == (
        '{}/cifar-10-binary.tar.gz is the Python version of CIFAR-10 '
        '(pickled), which is never read; give the binary version, '
        'cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/'
        'cifar-10-binary.tar.gz).'.format(tmp_path))


def test_a_member_missing_from_the_archive_is_named(tmp_path):
    members = published_members()
    del members[FOLDER + '/test_batch.bin']
    path = write(tmp_path / cifar10.ARCHIVE, gzip.compress(
        tar_bytes(members)))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} has no member cifar-10-batches-bin/test_batch.bin; it is not '
        'the binary version of CIFAR-10 (cifar-10-binary.tar.gz).'.format(
            path))


def test_only_the_batches_are_read_and_nothing_is_extracted(tmp_path):
    """Members named as paths outside any folder, a link and a device
    beside the batches: skipped unread, nothing written anywhere."""
    members = published_members()
    members['../../escape.bin'] = b'x' * 3073
    members['/etc/absolute'] = b'y'
    tar = tar_bytes(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w',
                      format=tarfile.GNU_FORMAT) as out:
        link = tarfile.TarInfo(FOLDER + '/link')
        link.type, link.linkname = tarfile.SYMTYPE, '/etc/passwd'
        out.addfile(link)
        device = tarfile.TarInfo(FOLDER + '/zero')
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 5
        out.addfile(device)
    tar = buffer.getvalue()[:1024] + tar
    work = tmp_path / 'work'
    work.mkdir()
    path = write(work / cifar10.ARCHIVE, gzip.compress(tar))
    before = sorted(p for p in os.listdir(str(tmp_path)))
    assert_arrays(cifar10.read_cifar10(str(work)))
    assert sorted(os.listdir(str(tmp_path))) == before
    assert os.listdir(str(work)) == [os.path.basename(path)]


def header(name, size, kind=b'0'):
    """A tar header block for ``name``, claiming ``size``."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(tarfile.GNU_FORMAT)


def test_a_member_larger_than_a_batch_is_refused_before_it_is_read(
        tmp_path):
    name = FOLDER + '/data_batch_1.bin'
    path = write(tmp_path / 'a.tar.gz', gzip.compress(
        header(name, 30730000 + 3073) + bytes(1024)))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} member {} is 30733073 bytes, more than a CIFAR-10 batch holds '
        '(30730000: 10000 records of 3073 bytes); it is not a CIFAR-10 '
        'batch.'.format(path, name))


@pytest.mark.parametrize('size,message', [
    (3073 * 2 + 5, 'is 6151 bytes, not a whole number of 3073-byte records '
     '(a label byte and 3072 pixels); it is truncated or not a CIFAR-10 '
     'batch.'),
    (0, 'holds no images.'),
])
def test_a_batch_of_partial_records(tmp_path, size, message):
    path = write(tmp_path / 'data_batch_1.bin', bytes(size))
    with pytest.raises(DatasetError) as error:
        cifar10.read_batch(path)
    assert str(error.value) == '{} {}'.format(path, message)
    members = published_members()
    members[FOLDER + '/data_batch_2.bin'] = bytes(size)
    path = write(tmp_path / cifar10.ARCHIVE, gzip.compress(
        tar_bytes(members)))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == '{} member {}/data_batch_2.bin {}'.format(
        path, FOLDER, message)


def test_a_label_beyond_nine_is_named_with_its_record(tmp_path):
    images, labels = batch(5, 1)
    labels[3] = 10
    path = write(tmp_path / 'data_batch_1.bin', batch_bytes(images, labels))
    with pytest.raises(DatasetError) as error:
        cifar10.read_batch(path)
    assert str(error.value) == (
        '{} has label 10 (record 3); CIFAR-10 has 10 classes (0-9).'.format(
            path))


def test_a_batch_larger_than_any_is_refused_unread(tmp_path):
    path = str(tmp_path / 'data_batch_1.bin')
    with open(path, 'wb') as f:
        f.truncate(30730000 + 3073)  # sparse: nothing to read
    with pytest.raises(DatasetError, match=r'is 30733073 bytes, more than a '
                       r'CIFAR-10 batch holds'):
        cifar10.read_batch(path)


def test_a_duplicated_member_is_refused(tmp_path):
    tar = tar_bytes(published_members())
    extra = tar_bytes({FOLDER + '/test_batch.bin':
                       batch_bytes(*batch(2, 9))})
    path = write(tmp_path / 'a.tar.gz', gzip.compress(
        extra[:512 + 6656] + tar))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} member {}/test_batch.bin appears twice; the archive is not '
        'CIFAR-10 as published.'.format(path, FOLDER))


def test_a_header_of_bad_checksum(tmp_path):
    tar = bytearray(ARCHIVE_TAR)
    tar[512 + 3] ^= 1  # the name of the second member
    path = write(tmp_path / 'a.tar.gz', gzip.compress(bytes(tar)))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} (at byte 512 of the tar archive) has a tar header whose checksum '
        'does not match; it is corrupt or not a tar archive.'.format(path))


def test_truncated_and_corrupt_archives(tmp_path):
    path = write(tmp_path / 'a.tar.gz', ARCHIVE[:len(ARCHIVE) // 2])
    with pytest.raises(DatasetError, match='^{} is not a readable gzip file '
                       r'\(.*\); it is truncated or corrupt\. Replace it with '
                       'a good copy.$'.format(path)):
        cifar10.read_archive(path)
    write(path, gzip.compress(ARCHIVE_TAR[:len(ARCHIVE_TAR) // 2 + 7]))
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} ends inside a member of the tar archive; it is truncated.'.format(
            path))
    write(path, b'\x1f\x8b' + bytes(30))
    with pytest.raises(DatasetError, match='is not a readable gzip file'):
        cifar10.read_archive(path)
    write(path, gzip.compress(b'plain text, not a tar archive' * 100))
    with pytest.raises(DatasetError, match=r'at byte 0 of the tar archive\) '
                       'has a tar header whose checksum is not a number'):
        cifar10.read_archive(path)


def test_an_archive_inflating_beyond_the_limit_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, 'MAX_ARCHIVE_BYTES', 2 ** 20)
    members = {FOLDER + '/padding': bytes(2 ** 21)}
    members.update(published_members())
    path = write(tmp_path / 'a.tar.gz', gzip.compress(tar_bytes(members), 9))
    # The random batches, and 2 MiB of zeros in some 2 KiB.
    assert os.path.getsize(path) < 6 * 7 * 3073 + 2 ** 12
    with pytest.raises(DatasetError) as error:
        cifar10.read_archive(path)
    assert str(error.value) == (
        '{} inflates to more than a CIFAR-10 archive may hold (1048576 '
        'bytes); it is not the binary version of CIFAR-10.'.format(path))


def test_files_of_another_kind_are_named_as_such(tmp_path, fifo):
    for make, kind in ((lambda p: os.symlink(fifo, p), 'a FIFO'),
                       (lambda p: os.symlink('/dev/zero', p),
                        'a character device'),
                       (os.mkdir, 'a directory')):
        directory = tmp_path / kind.replace(' ', '_')
        directory.mkdir()
        for name, (images, labels) in BATCHES.items():
            write(directory / name, batch_bytes(images, labels))
        path = str(directory / 'data_batch_2.bin')
        os.remove(path)
        make(path)
        with pytest.raises(DatasetError) as error:
            cifar10.read_cifar10(str(directory))
        assert str(error.value) == (
            '{} is {}, not a regular file; give a file.'.format(path, kind))
        archive = tmp_path / kind.replace(' ', '-')
        archive.mkdir()
        make(str(archive / cifar10.ARCHIVE))
        with pytest.raises(DatasetError) as error:
            cifar10.read_cifar10(str(archive))
        assert str(error.value) == (
            '{}/{} is {}, not a regular file; give a file.'.format(
                archive, cifar10.ARCHIVE, kind))


def test_a_dangling_link_and_a_dataset_dir_of_another_kind(tmp_path, fifo):
    os.symlink('gone.bin', str(tmp_path / 'test_batch.bin'))
    with pytest.raises(DatasetError, match='^{}/test_batch.bin is a symbolic '
                       'link to gone.bin, which does not exist.$'.format(
                           tmp_path)):
        cifar10.read_cifar10(str(tmp_path))
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(fifo)
    assert str(error.value) == (
        'dataset directory {} is a FIFO, not a directory; give a directory '
        'that holds the CIFAR-10 batch files (binary version) or '
        'cifar-10-binary.tar.gz.'.format(fifo))


def test_load_splits_holds_out_the_papers_last_5000(tmp_path):
    batches = {name: batch(1001, seed)
               for seed, name in enumerate(cifar10.BATCHES)}
    for name, (images, labels) in batches.items():
        write(tmp_path / name, batch_bytes(images, labels))
    train, validation, test = cifar10.load_splits(str(tmp_path))
    assert (len(train), len(validation), len(test)) == (5, 5000, 1001)
    last = batches['data_batch_5.bin']
    numpy.testing.assert_array_equal(validation[4999][0],
                                     mnist.scaled(last[0][-1]))
    assert validation[4999][1] == last[1][-1]
    first = batches['data_batch_1.bin']
    numpy.testing.assert_array_equal(validation[0][0],
                                     mnist.scaled(first[0][5]))
    numpy.testing.assert_array_equal(train[4][0], mnist.scaled(first[0][4]))
    train, none, _ = cifar10.load_splits(str(tmp_path), 0)
    assert none is None and len(train) == 5005
    train, validation, _ = cifar10.load_splits(str(tmp_path), 5)
    assert (len(train), len(validation)) == (5000, 5)
    with pytest.raises(DatasetError) as error:
        cifar10.load_splits(str(tmp_path), 5005)
    assert str(error.value) == ('--validation 5005 leaves no training images '
                                '(the training set has 5005).')


def test_load_splits_of_a_small_set_needs_a_smaller_validation(archive_dir):
    with pytest.raises(DatasetError, match='^--validation 5000 leaves no '
                       r'training images \(the training set has 35\)\.$'):
        cifar10.load_splits(archive_dir)
    train, validation, test = cifar10.load_splits(archive_dir, 10)
    assert (len(train), len(validation), len(test)) == (25, 10, 7)


# The cache and the download, against a server on 127.0.0.1.

@pytest.fixture
def served():
    """/good/ serves the archive, /404/ answers 404, /wrong/ serves other
    bytes; the requests made."""
    with helpers.http_server({
            '/good/' + cifar10.ARCHIVE: ARCHIVE,
            '/wrong/' + cifar10.ARCHIVE: ARCHIVE[:-1] + b'!'}) as served:
        yield served


CHECKSUM = hashlib.md5(ARCHIVE).hexdigest()


def url(base, source):
    return base + source + '/' + cifar10.ARCHIVE


def test_download_is_verified_cached_and_used_again(served, tmp_path,
                                                    monkeypatch, capsys):
    monkeypatch.delenv('CIFAR10_DIR', raising=False)
    base, requests = served
    cache = str(tmp_path / 'cache')
    urls = [url(base, '404'), url(base, 'wrong'), url(base, 'good')]
    assert_arrays(cifar10.read_cifar10(cache_dir=cache, urls=urls,
                                       checksum=CHECKSUM))
    assert os.listdir(cache) == [cifar10.ARCHIVE]
    assert requests == ['/404/' + cifar10.ARCHIVE, '/wrong/' + cifar10.ARCHIVE,
                        '/good/' + cifar10.ARCHIVE]
    assert capsys.readouterr().err == ''.join(
        'notice: downloading {}\n'.format(u) for u in urls)
    del requests[:]
    assert_arrays(cifar10.read_cifar10(cache_dir=cache, urls=urls,
                                       checksum=CHECKSUM))
    assert requests == []
    # A damaged cache entry is downloaded again.
    write(os.path.join(cache, cifar10.ARCHIVE), ARCHIVE[:100])
    assert_arrays(cifar10.read_cifar10(cache_dir=cache, urls=urls[2:],
                                       checksum=CHECKSUM))
    assert requests == ['/good/' + cifar10.ARCHIVE]
    assert 'notice: cached {}/{} fails verification; downloading it again.' \
        .format(cache, cifar10.ARCHIVE) in capsys.readouterr().err


def test_no_verified_download_leaves_nothing(served, tmp_path, monkeypatch):
    monkeypatch.delenv('CIFAR10_DIR', raising=False)
    base, _ = served
    cache = str(tmp_path / 'cache')
    urls = [url(base, '404'), url(base, 'wrong'), 'http://127.0.0.1:1/x']
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(cache_dir=cache, urls=urls, checksum=CHECKSUM)
    message = str(error.value)
    assert message.startswith(
        'could not download cifar-10-binary.tar.gz ({}: HTTP 404 Not Found; '
        '{}: checksum mismatch; http://127.0.0.1:1/x: '.format(*urls[:2]))
    assert message.endswith(
        '). Download cifar-10-binary.tar.gz by hand and pass its directory '
        'with --dataset-dir (or set CIFAR10_DIR).')
    assert '\n' not in message
    assert os.listdir(cache) == []


def test_a_download_larger_than_the_limit_is_not_kept(served, tmp_path,
                                                      monkeypatch):
    monkeypatch.delenv('CIFAR10_DIR', raising=False)
    monkeypatch.setattr(cifar10, 'MAX_DOWNLOAD_BYTES', 1000)
    base, _ = served
    cache = str(tmp_path / 'cache')
    with pytest.raises(DatasetError, match=': more than 1000 bytes, larger '
                       'than any CIFAR-10 file'):
        cifar10.read_cifar10(cache_dir=cache, urls=[url(base, 'good')],
                             checksum=CHECKSUM)
    assert os.listdir(cache) == []


def test_a_link_in_the_cache_is_not_written_through(served, tmp_path,
                                                    monkeypatch):
    monkeypatch.delenv('CIFAR10_DIR', raising=False)
    base, _ = served
    cache = tmp_path / 'cache'
    cache.mkdir()
    target = tmp_path / 'elsewhere'
    os.symlink(str(target), str(cache / cifar10.ARCHIVE))
    with pytest.raises(DatasetError) as error:
        cifar10.read_cifar10(cache_dir=str(cache), urls=[url(base, 'good')],
                             checksum=CHECKSUM)
    assert str(error.value) == (
        'cannot write to the CIFAR-10 cache {0}: {0}/{1} is a symbolic link; '
        'it was not replaced. Remove it, or write elsewhere. Set '
        'CHAINER_DATASET_ROOT to a writable directory, or pass '
        '--dataset-dir.'.format(cache, cifar10.ARCHIVE))
    assert not os.path.lexists(str(target))


def test_a_full_disk_under_the_cache_leaves_nothing(served, tmp_path,
                                                    monkeypatch):
    monkeypatch.delenv('CIFAR10_DIR', raising=False)
    base, _ = served
    cache = str(tmp_path / 'cache')

    def full(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(DatasetError, match='^cannot write to the CIFAR-10 '
                       'cache .*: No space left on device. Set '
                       'CHAINER_DATASET_ROOT'):
        cifar10.read_cifar10(cache_dir=cache, urls=[url(base, 'good')],
                             checksum=CHECKSUM)
    assert os.listdir(cache) == []


def test_the_default_cache_is_in_chainers_dataset_root():
    import chainer
    assert cifar10.default_cache_dir() == os.path.join(
        chainer.dataset.get_dataset_root(), 'pfnet', 'chainer', 'cifar')


# Damaged files: seeded byte flips, truncations and junk.

CASES = 80


def damaged(rng, data, damage, header_end):
    """``data`` with a seeded ``damage``; half the flips fall before
    ``header_end``."""
    data = bytearray(data)
    if damage == 'flip':
        for _ in range(rng.randint(1, 4)):
            end = header_end if rng.rand() < 0.5 else len(data)
            data[rng.randint(end)] ^= rng.randint(1, 256)
    elif damage == 'truncate':
        del data[rng.randint(len(data)):]
    else:
        data += rng.randint(0, 256, rng.randint(1, 600),
                            numpy.uint8).tobytes()
    return bytes(data)


def expected_batch(data):
    """What a batch file's bytes hold, read by the layout: the arrays, or
    None where the reader must refuse."""
    if not 0 < len(data) <= 30730000 or len(data) % 3073:
        return None
    records = numpy.frombuffer(data, numpy.uint8).reshape(-1, 3073)
    if records[:, 0].max() > 9:
        return None
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def octal(field):
    """A tar number by the rules: base-256 behind 0x80, or octal between
    spaces up to a NUL; None if neither."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], 'big')
    text = field.split(b'\0', 1)[0].strip(b' ')
    if any(c not in b'01234567' for c in text):
        return None
    return int(text or b'0', 8)


def expected_archive(tar):
    """What the bytes of a tar archive hold by the rules of the binary
    version: ``batch name -> (images, labels)``, or None where the
    reader must refuse."""
    found, offset = {}, 0
    while offset < len(tar):
        block = tar[offset:offset + 512]
        if not any(block):
            break
        if len(block) < 512:
            return None
        checksum, size = octal(block[148:156]), octal(block[124:136])
        unsigned = sum(block[:148]) + sum(block[156:]) + 256
        signed = unsigned - 256 * sum(b >= 128 for b in block[:148] +
                                      block[156:])
        if checksum not in (unsigned, signed) or size is None:
            return None
        name = block[:100].split(b'\0')[0]
        if block[257:263] == b'ustar\0' and block[345:500].strip(b'\0'):
            name = block[345:500].split(b'\0')[0] + b'/' + name
        offset += 512
        if chr(block[156]) in '123456':
            continue
        data = tar[offset:offset + size]
        offset += -(-size // 512) * 512
        if chr(block[156]) not in '0\0' or \
                not name.startswith(b'cifar-10-batches-bin/') or \
                name[21:].decode('latin-1') not in cifar10.BATCHES:
            if offset > len(tar):
                return None
            continue
        key = name[21:].decode()
        if key in found:
            return None
        if size > 30730000 or size == 0 or size % 3073:
            return None
        if offset > len(tar):
            return None
        found[key] = expected_batch(data)
        if found[key] is None:
            return None
    if set(found) != set(cifar10.BATCHES):
        return None
    return found


def read_or_refuse(read, path):
    """What ``read()`` gives, or None after checking its error is one line
    naming ``path``."""
    try:
        return read()
    except DatasetError as e:
        message = str(e)
        assert '\n' not in message and path in message, message
        return None


def assert_batches(got, answer):
    assert (got is None) == (answer is None)
    if answer is not None:
        assert sorted(got) == sorted(answer)
        for name in answer:
            for array, expected in zip(got[name], answer[name]):
                numpy.testing.assert_array_equal(array, expected)


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'junk'])
def test_a_damaged_batch_file(tmp_path, damage):
    original = batch_bytes(*batch(4, 3))
    path = str(tmp_path / 'data_batch_1.bin')
    refused = 0
    for seed in range(CASES):
        # Half the flips on the first label.
        data = damaged(numpy.random.RandomState(seed), original, damage, 1)
        write(path, data)
        got = read_or_refuse(lambda: cifar10.read_batch(path), path)
        answer = expected_batch(data)
        assert (got is None) == (answer is None), seed
        if got is not None:
            numpy.testing.assert_array_equal(got[0], answer[0])
            numpy.testing.assert_array_equal(got[1], answer[1])
        refused += got is None
    assert refused >= (CASES // 3 if damage == 'flip' else CASES - 1)


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'junk'])
def test_a_damaged_tar_in_a_whole_gzip(tmp_path, damage):
    """The damage inside the tar, gzip whole around it: the tar reader's
    own checks."""
    path = str(tmp_path / cifar10.ARCHIVE)
    refused = 0
    for seed in range(CASES):
        rng = numpy.random.RandomState(100 + seed)
        tar = damaged(rng, ARCHIVE_TAR, damage, 2048)
        write(path, gzip.compress(tar, mtime=0))
        got = read_or_refuse(lambda: cifar10.read_archive(path), path)
        assert_batches(got, expected_archive(tar))
        refused += got is None
    # Junk after the archive's end is not the archive's, as tar has it.
    assert refused >= CASES // 4 if damage != 'junk' else refused == 0


@pytest.mark.parametrize('damage', ['flip', 'truncate', 'junk'])
def test_a_damaged_gzip(tmp_path, damage):
    """The damage in the compressed bytes: the archive as it was (a flip
    gzip ignores), or refused in one line."""
    path = str(tmp_path / cifar10.ARCHIVE)
    answer = expected_archive(ARCHIVE_TAR)
    refused = 0
    for seed in range(CASES):
        rng = numpy.random.RandomState(200 + seed)
        data = damaged(rng, ARCHIVE, damage, 10)
        write(path, data)
        got = read_or_refuse(lambda: cifar10.read_archive(path), path)
        try:
            tar = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            tar = None
        assert_batches(got, None if tar is None else expected_archive(tar))
        if got is not None:
            assert_batches(got, answer)
        refused += got is None
    assert refused >= CASES // 3
