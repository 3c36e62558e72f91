"""MNIST from IDX files: a local directory, a verified cache, or a download.

:func:`get_mnist` returns what ``chainer.datasets.get_mnist()`` returns
(float32 images of 784 values in ``[0, 1]``, int32 labels, 60000 training and
10000 test examples), without depending on the original site, which has
refused the downloads (HTTP 403) since 2024. It looks, in this order, at

1. ``dataset_dir`` (``--dataset-dir``) or else the ``MNIST_DIR`` environment
   variable: a directory holding the four IDX files under their canonical
   names, each gzip-compressed (``.gz``) or raw. Any data set in MNIST's IDX
   layout is accepted (Fashion-MNIST, KMNIST, ...): the structure is checked,
   and a checksum other than MNIST's is reported as a notice only.
2. A cache in Chainer's dataset root
   (``$CHAINER_DATASET_ROOT/pfnet/chainer/mnist``, by default under
   ``~/.chainer/dataset``), each file verified before use.
3. The maintained mirrors, then the original site. Each download goes to a
   temporary file that is verified and only then renamed into the cache.

A file is MNIST when the MD5 of the canonical ``.gz`` or the SHA-256 of the
decompressed bytes matches; the second survives recompression.

Every file is read as one anyone may have written: only a regular file
(a FIFO, a device or a directory is refused before it is opened), and no
more than its header promises, which is checked against
:data:`MAX_IDX_BYTES` first; a gzip file is decompressed no further than
that promise and one byte, so a lying header or a gzip bomb costs at most
what the file holds.
"""
import gzip
import hashlib
import io
import math
import os
import struct
import zlib

import numpy

import chainer

from quantized_net.atomic_file import atomic_write
from quantized_net import errors
from quantized_net import untrusted_file
from quantized_net.training import downloads


#: name -> (MD5 of the canonical .gz, SHA-256 of the decompressed file)
MNIST_CHECKSUMS = {
    'train-images-idx3-ubyte': (
        'f68b3c2dcbeaaa9fbdd348bbdeb94873',
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db'),
    'train-labels-idx1-ubyte': (
        'd53e105ee54ea40749a09fcbcd1e9432',
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5'),
    't10k-images-idx3-ubyte': (
        '9fb629c4189551a2d022fa330f9573f3',
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7'),
    't10k-labels-idx1-ubyte': (
        'ec29112dd5afa0611ce80d1b7f02629c',
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2'),
}

#: Tried in order; each serves ``<mirror><name>.gz``.
MNIST_MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
)

SPLITS = (
    ('train', 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    ('test', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
)

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
#: kind -> (magic number, dimensions, what a swapped file would be)
IDX_KINDS = {
    'image': (IMAGE_MAGIC, 3, 'a label'),
    'label': (LABEL_MAGIC, 1, 'an image'),
}
IMAGE_SIDE = 28
PIXEL_MAX = 255  # 8-bit pixels
N_CLASSES = 10
#: The most bytes an IDX file may hold (header included), checked against
#: its header before anything more is read: 2 GiB, some 2.7 million 28x28
#: images (MNIST's training set is 47 MB, EMNIST's largest 550 MB).
MAX_IDX_BYTES = 2 ** 31
#: The most bytes a mirror may send for one file (MNIST's largest .gz is
#: 9.9 MB).
MAX_DOWNLOAD_BYTES = 2 ** 26
#: What a gzip file may hold beyond its deflated data: headers, and the
#: members of a concatenated file.
GZIP_ALLOWANCE = 2 ** 20


def default_cache_dir():
    """Where verified downloads are kept, inside Chainer's dataset root."""
    return downloads.cache_dir('pfnet', 'chainer', 'mnist')


class _NotGzip(errors.DatasetError):
    """A compressed file that gzip cannot read."""


def _header_size(kind):
    return 4 + 4 * IDX_KINDS[kind][1]


def _promise(path, head, kind):
    """The shape the IDX header ``head`` promises, checked to be of
    ``kind`` (``'image'``: 3 dimensions, MNIST's image size; ``'label'``:
    1) and to fit :data:`MAX_IDX_BYTES`; and the file's size it implies."""
    magic, ndim, other = IDX_KINDS[kind]
    header = _header_size(kind)
    if len(head) < header:
        raise errors.DatasetError(
            '{} is too short ({} bytes) for an IDX {} header; '
            'it is truncated.'.format(path, len(head), kind))
    fields = list(struct.unpack('>{}I'.format(1 + ndim), head[:header]))
    if fields[0] != magic:
        raise errors.DatasetError(
            '{} is not an IDX {} file: magic number {:#010x}, expected '
            '{:#010x}. Is it {} file, or another format?'.format(
                path, kind, fields[0], magic, other))
    shape = fields[1:]
    # Python integers: a header cannot overflow the product.
    expected = header + math.prod(shape)
    if expected > MAX_IDX_BYTES:
        raise errors.DatasetError(
            '{} promises {} {}s of {} bytes ({} bytes in all), more than an '
            'IDX file may hold ({} bytes); its header is corrupt. Replace it '
            'with a good copy.'.format(
                path, shape[0], kind, 'x'.join(map(str, shape[1:])) or 1,
                expected, MAX_IDX_BYTES))
    if kind == 'image' and shape[1:] != [IMAGE_SIDE, IMAGE_SIDE]:
        raise errors.DatasetError(
            '{} holds {}x{} images; the network takes {}x{} (MNIST '
            'layout).'.format(path, *shape[1:], IMAGE_SIDE, IMAGE_SIDE))
    return shape, expected


def _wrong_size(path, shape, kind, expected, actual):
    truncated = not isinstance(actual, str) and actual < expected
    return errors.DatasetError(
        '{} should be {} bytes for {} {}s but is {}; it is {}. '
        'Replace it with a good copy.'.format(
            path, expected, shape[0], kind, actual,
            'truncated' if truncated else 'followed by junk'))


def _gzip_bound(expected):
    """The most bytes a gzip file of ``expected`` decompressed bytes can
    hold: deflate's stored blocks add 5 bytes to each 64 KiB, and a
    generous allowance covers headers and concatenated members."""
    return expected + expected // 256 + GZIP_ALLOWANCE


def _read_raw(f, size, path, kind):
    head = f.read(_header_size(kind))
    shape, expected = _promise(path, head, kind)
    if size != expected:
        raise _wrong_size(path, shape, kind, expected, size)
    data = downloads.read_at_most(f, expected - len(head) + 1, head)
    if len(data) != expected:  # the file changed while it was read
        raise _wrong_size(path, shape, kind, expected, len(data))
    return shape, data


def _read_gzip(f, path, kind, size):
    """Decompresses no more than the header promises, plus one byte that
    tells a stream followed by junk (a gzip bomb) from a whole one; a
    file larger than gzip makes of that promise is not decompressed."""
    if size > _gzip_bound(MAX_IDX_BYTES):
        raise errors.DatasetError(
            '{} is {} bytes, more than a gzipped IDX file may hold ({} '
            'bytes); it was not read.'.format(
                path, size, _gzip_bound(MAX_IDX_BYTES)))
    try:
        with gzip.GzipFile(fileobj=f, mode='rb') as stream:
            head = downloads.read_at_most(stream, _header_size(kind))
            shape, expected = _promise(path, bytes(head), kind)
            if size > _gzip_bound(expected):
                raise errors.DatasetError(
                    '{} is {} bytes, more than gzip makes of {} {}s ({} '
                    'bytes); it is followed by junk. Replace it with a good '
                    'copy.'.format(path, size, shape[0], kind, expected))
            data = downloads.read_at_most(stream, expected - len(head) + 1,
                                          head)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise _NotGzip(
            '{} is not a readable gzip file ({}); it is truncated or corrupt. '
            'Replace it with a good copy.'.format(path, e))
    if len(data) != expected:
        raise _wrong_size(path, shape, kind, expected,
                          len(data) if len(data) < expected else 'more')
    return shape, data


def _read_file(f, size, path, kind, gzipped, checksum):
    """The checked array of kind ``kind`` in the open file ``f`` of
    ``size`` bytes, and whether it matches ``checksum`` (``(MD5 of the
    .gz, SHA-256 of the decompressed bytes)``, either None)."""
    md5_gz, sha256_raw = checksum
    try:
        if gzipped:
            shape, raw = _read_gzip(f, path, kind, size)
            is_mnist = md5_gz is not None and downloads.md5(f) == md5_gz
        else:
            shape, raw = _read_raw(f, size, path, kind)
            is_mnist = False
    except OSError as e:  # a read error of the disk
        raise errors.DatasetError('cannot read {}: {}.'.format(
            path, e.strerror or e))
    if not is_mnist and sha256_raw is not None:
        is_mnist = hashlib.sha256(raw).hexdigest() == sha256_raw
    if shape[0] == 0:
        raise errors.DatasetError('{} holds no {}s.'.format(path, kind))
    array = numpy.frombuffer(raw, numpy.uint8, offset=_header_size(kind))
    if kind == 'image':
        return array.reshape(shape[0], -1), is_mnist
    if array.max() >= N_CLASSES:
        raise errors.DatasetError(
            '{} has label {}; the network has {} classes (0-{}).'.format(
                path, array.max(), N_CLASSES, N_CLASSES - 1))
    return array, is_mnist


def _read(path, kind, checksum=(None, None), gzipped=None):
    """The checked array of kind ``kind`` in the IDX file ``path``, and
    whether it matches ``checksum``; ``gzipped`` defaults to whether the
    name ends in ``.gz``."""
    if gzipped is None:
        gzipped = path.endswith('.gz')
    with untrusted_file.open_regular(path, errors.DatasetError) as f:
        return _read_file(f, os.fstat(f.fileno()).st_size, path, kind,
                          gzipped, checksum)


def read_images(path):
    """The uint8 images ``(N, 784)`` of an IDX file (gzipped if the name
    ends in ``.gz``).

    Raises:
        errors.DatasetError: ``path`` is not a regular file, or not
            MNIST-shaped IDX images; nothing beyond what its header
            promises (at most :data:`MAX_IDX_BYTES`) is read.
    """
    return _read(path, 'image')[0]


def read_labels(path):
    """The uint8 labels of an IDX file, checked to be 0-9.

    Raises:
        errors.DatasetError: As :func:`read_images`.
    """
    return _read(path, 'label')[0]


def _find_local(directory, name):
    names = [name + '.gz', name]
    path = downloads.locate(directory, names)
    if path is None:
        raise errors.DatasetError(
            '{} is missing from {}: expected {} or {} (IDX format, as '
            'published with MNIST).'.format(name, directory, *names))
    return path


def _to_arrays(files):
    """``files``: name -> (path, array); returns ``(train, test)``, each
    ``(uint8 images (N, 784), uint8 labels (N,))``."""
    splits = []
    for _, images_name, labels_name in SPLITS:
        images_path, images = files[images_name]
        labels_path, labels = files[labels_name]
        if len(images) != len(labels):
            raise errors.DatasetError(
                '{} holds {} images but {} holds {} labels; they are not a '
                'pair.'.format(images_path, len(images), labels_path,
                               len(labels)))
        splits.append((images, labels))
    return tuple(splits)


def scaled(pixels):
    """8-bit pixels as the network sees them: float32 in [0, 1], each
    pixel over 255, rounded as ``chainer.datasets.get_mnist()`` rounds."""
    images = pixels.astype(numpy.float32)
    images *= 1. / PIXEL_MAX
    return images


def as_dataset(images, labels):
    """The :class:`~chainer.datasets.TupleDataset` the network trains on:
    :func:`scaled` images and int32 labels, as
    ``chainer.datasets.get_mnist()`` gives them."""
    return chainer.datasets.TupleDataset(scaled(images),
                                         labels.astype(numpy.int32))


def _kind(name):
    """``'image'`` or ``'label'``: what the IDX file ``name`` holds."""
    return 'label' if any(name == labels for _, _, labels in SPLITS) \
        else 'image'


def _load_dir(directory, checksums):
    downloads.check_directory(directory, 'the four MNIST IDX files')
    files = {}
    others = []
    for name, checksum in checksums.items():
        path = _find_local(directory, name)
        array, is_mnist = _read(path, _kind(name), checksum)
        files[name] = path, array
        if not is_mnist:
            others.append(path)
    arrays = _to_arrays(files)
    if others:
        downloads.notice(
            '{} {} not the canonical MNIST (checksum differs); using it as a '
            'data set in the same IDX layout.'.format(
                ', '.join(others), 'is' if len(others) == 1 else 'are'))
    return arrays


def _download(url, path, checksum):
    """Fetches ``url`` to ``path`` if it verifies; returns its array, or
    raises downloads.Rejected."""
    try:
        with atomic_write(path, 'wb') as f:
            gz = downloads.fetch(url, MAX_DOWNLOAD_BYTES, 'MNIST')
            try:
                array, is_mnist = _read_file(
                    io.BytesIO(gz), len(gz), url,
                    _kind(os.path.basename(path)[:-len('.gz')]), True,
                    checksum)
            except _NotGzip:
                raise downloads.Rejected('not a gzip file')
            except errors.DatasetError:  # not an IDX file: not the one
                is_mnist = False
            if not is_mnist:
                raise downloads.Rejected('checksum mismatch')
            f.write(gz)
    except errors.ResultError as e:
        raise downloads.cache_write_error(os.path.dirname(path), 'MNIST', e)
    return array


def _cached(directory, name, mirrors, checksum):
    """``(path, array)`` of the verified cached ``name``, downloading it
    when missing or failing verification."""
    path = os.path.join(directory, name + '.gz')

    def verify(path):
        array, is_mnist = _read(path, _kind(name), checksum)
        return (path, array) if is_mnist else None

    def fetch_into(url, path):
        return path, _download(url, path, checksum)

    return downloads.cache_entry(
        path, [mirror + name + '.gz' for mirror in mirrors], 'MNIST',
        'Download the four MNIST files by hand and pass their directory '
        'with --dataset-dir (or set MNIST_DIR).', verify, fetch_into)


def read_mnist(dataset_dir=None, cache_dir=None, mirrors=MNIST_MIRRORS,
               checksums=MNIST_CHECKSUMS):
    """MNIST as its 8-bit pixels: ``(train, test)``, each ``(images,
    labels)``, uint8 arrays of shapes ``(N, 784)`` and ``(N,)``.

    Args:
        dataset_dir (str): Directory with the four IDX files (``.gz`` or
            raw). Defaults to the ``MNIST_DIR`` environment variable; when
            neither is set, the verified cache (downloading what is missing)
            is used.
        cache_dir (str): Cache directory; defaults to
            :func:`default_cache_dir`.
        mirrors (sequence of str): Base URLs tried in order.
        checksums (dict): ``name -> (md5 of .gz, sha256 of raw bytes)``.

    Returns:
        tuple: ``((train images, train labels), (test images, test
        labels))``.

    Raises:
        errors.DatasetError: A file is missing, truncated, corrupt or not
            in the MNIST IDX layout, or no mirror served a verified copy.
    """
    dataset_dir = dataset_dir or os.environ.get('MNIST_DIR')
    if dataset_dir:
        return _load_dir(dataset_dir, checksums)
    cache_dir = cache_dir or default_cache_dir()
    downloads.make_cache(cache_dir, 'MNIST')
    return _to_arrays({
        name: _cached(cache_dir, name, mirrors, checksum)
        for name, checksum in checksums.items()})


def get_mnist(dataset_dir=None, **options):
    """MNIST as ``(train, test)`` :class:`~chainer.datasets.TupleDataset`,
    as ``chainer.datasets.get_mnist()`` gives it: each example a float32
    image of 784 values in ``[0, 1]`` and an int32 label. Reads the files
    as :func:`read_mnist` does, with the same arguments."""
    return tuple(as_dataset(images, labels) for images, labels in
                 read_mnist(dataset_dir, **options))


def load_splits(dataset_dir=None, validation=0):
    """What a script trains and evaluates on: ``(train, validation,
    test)``, the last ``validation`` training images held out (validation
    is None when that is 0).

    Raises:
        errors.DatasetError: As :func:`get_mnist`, or ``validation`` leaves no
            training images.
    """
    train, test = get_mnist(dataset_dir)
    return hold_out_last(train, test, validation)


def hold_out_last(train, test, validation):
    """``(train, validation, test)``: the last ``validation`` images of
    ``train`` held out (validation is None when that is 0).

    Raises:
        errors.DatasetError: ``validation`` leaves no training images.
    """
    if not validation:
        return train, None, test
    if validation >= len(train):
        raise errors.DatasetError(
            '--validation {} leaves no training images (the training set '
            'has {}).'.format(validation, len(train)))
    train, held_out = chainer.datasets.split_dataset(
        train, len(train) - validation)
    return train, held_out, test
