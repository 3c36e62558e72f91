"""CIFAR-10 from its binary version: a directory at hand, a verified
cache, or a download.

:func:`get_cifar10` returns float32 images ``(N, 3, 32, 32)`` in
``[0, 1]`` and int32 labels 0-9, 50000 training and 10000 test examples,
read from the *binary* version of CIFAR-10 (``cifar-10-binary.tar.gz``),
never from the pickled Python version, which would run code from the file.
It looks, in this order, at

1. ``dataset_dir`` (``--dataset-dir``) or else the ``CIFAR10_DIR``
   environment variable: a directory holding the six batch files
   (``data_batch_1.bin`` to ``data_batch_5.bin``, ``test_batch.bin``),
   themselves or in the ``cifar-10-batches-bin`` folder the archive
   unpacks to, or else the archive ``cifar-10-binary.tar.gz``. Any data
   set in the same layout is accepted (the structure is checked); one
   that is not CIFAR-10 whole is reported in a notice.
2. A cache in Chainer's dataset root
   (``$CHAINER_DATASET_ROOT/pfnet/chainer/cifar``), holding the archive,
   verified by its MD5 each time it is used.
3. A download of the archive from its official source
   (:data:`URL`), verified by its MD5 before it is renamed into the cache.

A batch file is a sequence of records of one label byte and 3072 pixel
bytes (1024 red, 1024 green, 1024 blue, each 32 rows of 32), at most
10000 records (:data:`BATCH_BYTES`), whose size is checked before it is
read. The archive is read member by member into memory, through a tar
reader of this module's own that never extracts anything to disk (so no
name in the archive is ever used as a path) and reads only the six batch
members, each after its size has been checked; nothing it inflates goes
beyond :data:`MAX_ARCHIVE_BYTES`.
"""
import gzip
import os
import re
import zlib

import numpy

from quantized_net import errors
from quantized_net import untrusted_file
from quantized_net.training import downloads
from quantized_net.training import mnist

#: The binary version of CIFAR-10, and the MD5 its authors publish.
URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
ARCHIVE = 'cifar-10-binary.tar.gz'
MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'
#: The folder of the batches in the archive.
FOLDER = 'cifar-10-batches-bin'
TRAIN_BATCHES = tuple('data_batch_{}.bin'.format(i) for i in range(1, 6))
TEST_BATCH = 'test_batch.bin'
BATCHES = TRAIN_BATCHES + (TEST_BATCH,)
#: An image as the networks see it: channels, height, width.
IMAGE_SHAPE = (3, 32, 32)
N_CLASSES = 10
#: A record: its label byte, then its pixels.
RECORD_BYTES = 1 + 3 * 32 * 32
BATCH_RECORDS = 10000
#: What a batch holds: 30730000 bytes.
BATCH_BYTES = BATCH_RECORDS * RECORD_BYTES
#: Training images held out for validation, as the paper's authors do
#: (their cifar10.py): the last 5000, leaving 45000 to train on.
VALIDATION = 5000
#: The most bytes the archive may inflate to (the real one: 184 MB).
MAX_ARCHIVE_BYTES = 2 ** 28
#: The most bytes a download of the archive may have (the real one:
#: 170 MB).
MAX_DOWNLOAD_BYTES = 2 ** 28
#: The environment variable naming a directory at hand.
ENVIRONMENT = 'CIFAR10_DIR'
TAR_BLOCK = 512
#: Tar entry types that have no data blocks: links, devices, folders,
#: FIFOs. Every other type (regular files, extended headers, long names)
#: is followed by its size in data.
TAR_NO_DATA = frozenset(b'123456')
_OCTAL = re.compile(rb' *([0-7]*) *')


def default_cache_dir():
    """Where the verified archive is kept, inside Chainer's dataset
    root."""
    return downloads.cache_dir('pfnet', 'chainer', 'cifar')


def _check_size(size, where):
    """DatasetError unless ``size`` bytes are 1 to 10000 whole records."""
    if size > BATCH_BYTES:
        raise errors.DatasetError(
            '{} is {} bytes, more than a CIFAR-10 batch holds ({}: {} '
            'records of {} bytes); it is not a CIFAR-10 batch.'.format(
                where, size, BATCH_BYTES, BATCH_RECORDS, RECORD_BYTES))
    if size == 0:
        raise errors.DatasetError('{} holds no images.'.format(where))
    if size % RECORD_BYTES:
        raise errors.DatasetError(
            '{} is {} bytes, not a whole number of {}-byte records (a label '
            'byte and 3072 pixels); it is truncated or not a CIFAR-10 '
            'batch.'.format(where, size, RECORD_BYTES))


def _records(data, where):
    """``(uint8 images (N, 3, 32, 32), uint8 labels (N,))`` of the
    records ``data`` (checked by :func:`_check_size`)."""
    records = numpy.frombuffer(data, numpy.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() >= N_CLASSES:
        bad = int(numpy.argmax(labels >= N_CLASSES))
        raise errors.DatasetError(
            '{} has label {} (record {}); CIFAR-10 has {} classes '
            '(0-{}).'.format(where, labels[bad], bad, N_CLASSES,
                             N_CLASSES - 1))
    return records[:, 1:].reshape((-1,) + IMAGE_SHAPE), labels


def read_batch(path):
    """The images and labels of a batch file of the binary version.

    Args:
        path (str): A file such as ``data_batch_1.bin``.

    Returns:
        tuple: ``(images, labels)``, uint8 arrays of shapes
        ``(N, 3, 32, 32)`` and ``(N,)``, labels 0-9.

    Raises:
        errors.DatasetError: ``path`` is not a regular file, or is not 1
            to 10000 whole records (its size is checked before it is
            read), or has a label beyond 9.
    """
    with untrusted_file.open_regular(path, errors.DatasetError) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            _check_size(size, path)
            data = downloads.read_at_most(f, size + 1)
        except OSError as e:
            raise errors.DatasetError('cannot read {}: {}.'.format(
                path, e.strerror or e))
    if len(data) != size:
        raise errors.DatasetError(
            '{} changed while it was read; read it again.'.format(path))
    return _records(data, path)


class _Inflated:
    """A gzip stream that refuses to inflate beyond a limit."""

    def __init__(self, stream, path):
        self._stream = stream
        self._path = path
        self.offset = 0

    def read(self, count):
        data = self._stream.read(count)
        self.offset += len(data)
        if self.offset > MAX_ARCHIVE_BYTES:
            raise errors.DatasetError(
                '{} inflates to more than a CIFAR-10 archive may hold ({} '
                'bytes); it is not the binary version of CIFAR-10.'.format(
                    self._path, MAX_ARCHIVE_BYTES))
        return data


def _tar_number(field, what, where):
    """The tar numeric ``field``: octal digits between spaces, ended by a
    NUL, or base-256 (its first byte 0x80)."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], 'big')
    match = _OCTAL.fullmatch(field.split(b'\0', 1)[0])
    if match is None:
        raise errors.DatasetError(
            '{} has a tar header whose {} is not a number; it is corrupt '
            'or not a tar archive.'.format(where, what))
    return int(match.group(1) or b'0', 8)


def _tar_header(block, where):
    """``(name, type, size)`` of the tar header ``block``, its checksum
    verified."""
    stored = _tar_number(block[148:156], 'checksum', where)
    unsigned = sum(block[:148]) + sum(block[156:]) + 8 * ord(' ')
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:]
                                  if b >= 128)
    if stored not in (unsigned, signed):
        raise errors.DatasetError(
            '{} has a tar header whose checksum does not match; it is '
            'corrupt or not a tar archive.'.format(where))
    name = block[:100].split(b'\0', 1)[0]
    if block[257:263] == b'ustar\0':  # POSIX: a prefix of the name
        prefix = block[345:500].split(b'\0', 1)[0]
        if prefix:
            name = prefix + b'/' + name
    return name, block[156], _tar_number(block[124:136], 'size', where)


def _archive_members(stream, path):
    """``{batch name: its bytes}`` of the tar ``stream`` of ``path``:
    the six batches of :data:`FOLDER`, each regular member's size checked
    before it is read; every other member is skipped unread."""
    wanted = {(FOLDER + '/' + name).encode(): name for name in BATCHES}
    members = {}
    python_version = False
    while True:
        block = downloads.read_at_most(stream, TAR_BLOCK)
        where = '{} (at byte {} of the tar archive)'.format(
            path, stream.offset - len(block))
        if not block or not any(block):  # the end of the archive
            break
        if len(block) < TAR_BLOCK:
            raise errors.DatasetError(
                '{} ends inside a tar header; it is truncated.'.format(
                    where))
        name, kind, size = _tar_header(bytes(block), where)
        python_version |= name.startswith(b'cifar-10-batches-py/')
        if kind in TAR_NO_DATA:
            continue
        padded = -(-size // TAR_BLOCK) * TAR_BLOCK
        if name in wanted and kind in b'0\0':
            batch = wanted[name]
            where = '{} member {}'.format(path, name.decode())
            if batch in members:
                raise errors.DatasetError(
                    '{} appears twice; the archive is not CIFAR-10 as '
                    'published.'.format(where))
            _check_size(size, where)
            data = downloads.read_at_most(stream, size)
            skipped = downloads.skip(stream, padded - size)
            members[batch] = data
        else:
            data, skipped = b'', downloads.skip(stream, padded)
        if len(data) + skipped < padded:
            raise errors.DatasetError(
                '{} ends inside a member of the tar archive; it is '
                'truncated.'.format(path))
    # What follows the end is read too, so that gzip checks its CRC.
    downloads.skip(stream, MAX_ARCHIVE_BYTES + 1)
    missing = [name for name in BATCHES if name not in members]
    if missing and python_version:
        raise errors.DatasetError(
            '{} is the Python version of CIFAR-10 (pickled), which is never '
            'read; give the binary version, {} ({}).'.format(
                path, ARCHIVE, URL))
    if missing:
        raise errors.DatasetError(
            '{} has no member {}/{}; it is not the binary version of '
            'CIFAR-10 ({}).'.format(path, FOLDER, missing[0], ARCHIVE))
    return members


def read_archive(path):
    """The batches of a ``cifar-10-binary.tar.gz`` archive, read in
    memory (nothing is extracted).

    Args:
        path (str): The archive.

    Returns:
        dict: ``batch name -> (images, labels)``, as :func:`read_batch`
        gives them, for each name of :data:`BATCHES`.

    Raises:
        errors.DatasetError: ``path`` is not a regular file, not a
            readable gzip file, not a tar archive, lacks a batch, has a
            batch that is not 1 to 10000 whole records or has a label
            beyond 9, or inflates beyond :data:`MAX_ARCHIVE_BYTES`.
    """
    with untrusted_file.open_regular(path, errors.DatasetError) as f:
        try:
            with gzip.GzipFile(fileobj=f, mode='rb') as stream:
                members = _archive_members(_Inflated(stream, path), path)
        except (OSError, EOFError, zlib.error) as e:
            raise errors.DatasetError(
                '{} is not a readable gzip file ({}); it is truncated or '
                'corrupt. Replace it with a good copy.'.format(path, e))
    return {name: _records(data, '{} member {}/{}'.format(path, FOLDER, name))
            for name, data in members.items()}


def _find_local(directory):
    """``('batches', folder)`` or ``('archive', path)``: where CIFAR-10 is
    in ``directory``."""
    for folder in (directory, os.path.join(directory, FOLDER)):
        if downloads.locate(folder, BATCHES) is not None:
            return 'batches', folder
    path = downloads.locate(directory, [ARCHIVE])
    if path is not None:
        return 'archive', path
    python = downloads.locate(directory, ['cifar-10-python.tar.gz',
                                          'cifar-10-batches-py'])
    raise errors.DatasetError(
        'CIFAR-10 is missing from {}: expected {} to {} and {}, in it or in '
        '{}/, or {} (the binary version){}.'.format(
            directory, TRAIN_BATCHES[0], TRAIN_BATCHES[-1], TEST_BATCH,
            FOLDER, ARCHIVE,
            '' if python is None else '; {} is the Python version '
            '(pickled), which is never read'.format(python)))


def _batches_in(folder):
    batches = {}
    for name in BATCHES:
        path = downloads.locate(folder, [name])
        if path is None:
            raise errors.DatasetError(
                '{} is missing from {}: CIFAR-10 (binary version) is {} to '
                '{} and {}.'.format(name, folder, TRAIN_BATCHES[0],
                                    TRAIN_BATCHES[-1], TEST_BATCH))
        batches[path] = read_batch(path)
    short = [path for path, (_, labels) in batches.items()
             if len(labels) != BATCH_RECORDS]
    if short:
        downloads.notice(
            '{} {} fewer than the {} images of a CIFAR-10 batch; using {} as '
            'a data set in the CIFAR-10 layout.'.format(
                ', '.join(short), 'holds' if len(short) == 1 else 'hold',
                BATCH_RECORDS, 'it' if len(short) == 1 else 'them'))
    return dict(zip(BATCHES, batches.values()))


def _splits(batches):
    """``((train images, train labels), (test images, test labels))`` of
    ``batch name -> (images, labels)``."""
    train = tuple(numpy.concatenate([batches[name][i]
                                     for name in TRAIN_BATCHES])
                  for i in (0, 1))
    return train, batches[TEST_BATCH]


def _load_dir(directory):
    downloads.check_directory(
        directory, 'the CIFAR-10 batch files (binary version) or {}'.format(
            ARCHIVE))
    kind, where = _find_local(directory)
    if kind == 'batches':
        return _splits(_batches_in(where))
    batches = read_archive(where)
    if downloads.file_md5(where) != MD5:
        downloads.notice(
            '{} is not the canonical CIFAR-10 archive (checksum differs); '
            'using it as a data set in the same layout.'.format(where))
    return _splits(batches)


def read_cifar10(dataset_dir=None, cache_dir=None, urls=(URL,),
                 checksum=MD5):
    """CIFAR-10 as its 8-bit pixels: ``(train, test)``, each ``(images,
    labels)``, uint8 arrays of shapes ``(N, 3, 32, 32)`` and ``(N,)``.

    Args:
        dataset_dir (str): Directory with the batch files or the archive.
            Defaults to the ``CIFAR10_DIR`` environment variable; when
            neither is set, the verified cache (downloading the archive if
            it is missing) is used.
        cache_dir (str): Cache directory; defaults to
            :func:`default_cache_dir`.
        urls (sequence of str): Where the archive is served, tried in
            order.
        checksum (str): The archive's MD5.

    Returns:
        tuple: ``((train images, train labels), (test images, test
        labels))``; the training images are the five batches in order.

    Raises:
        errors.DatasetError: A file is missing, truncated, corrupt or not
            in the layout of CIFAR-10's binary version, or no source
            served a verified archive: one line naming the file.
    """
    dataset_dir = dataset_dir or os.environ.get(ENVIRONMENT)
    if dataset_dir:
        return _load_dir(dataset_dir)
    cache_dir = cache_dir or default_cache_dir()
    downloads.make_cache(cache_dir, 'CIFAR-10')
    path = downloads.cached(
        cache_dir, ARCHIVE, urls, checksum, MAX_DOWNLOAD_BYTES, 'CIFAR-10',
        'Download {} by hand and pass its directory with --dataset-dir (or '
        'set {}).'.format(ARCHIVE, ENVIRONMENT))
    return _splits(read_archive(path))


def get_cifar10(dataset_dir=None, **options):
    """CIFAR-10 as ``(train, test)``
    :class:`~chainer.datasets.TupleDataset`: each example a float32 image
    ``(3, 32, 32)`` in ``[0, 1]`` (each pixel over 255, rounded as
    :func:`mnist.scaled` rounds) and an int32 label. Reads the files as
    :func:`read_cifar10` does, with the same arguments."""
    return tuple(mnist.as_dataset(images, labels) for images, labels in
                 read_cifar10(dataset_dir, **options))


def load_splits(dataset_dir=None, validation=None):
    """What a script trains and evaluates on: ``(train, validation,
    test)``.

    Args:
        dataset_dir (str): As :func:`read_cifar10`.
        validation (int): Training images held out, the last ones; None
            for the paper's :data:`VALIDATION` (5000, as its authors'
            cifar10.py), 0 for none (validation is then None).

    Raises:
        errors.DatasetError: As :func:`read_cifar10`, or ``validation``
            leaves no training images.
    """
    train, test = get_cifar10(dataset_dir)
    return mnist.hold_out_last(
        train, test, VALIDATION if validation is None else validation)
