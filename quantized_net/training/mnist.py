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
"""
import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
import zlib

import numpy

import chainer

from quantized_net.atomic_file import atomic_write
from quantized_net import errors


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
DOWNLOAD_TIMEOUT = 60  # seconds without an answer before a mirror is skipped


def default_cache_dir():
    """Where verified downloads are kept, inside Chainer's dataset root."""
    return os.path.join(chainer.dataset.get_dataset_root(),
                        'pfnet', 'chainer', 'mnist')


def _notice(message):
    print('notice: ' + message, file=sys.stderr)


def _decompress(path, data):
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise errors.DatasetError(
            '{} is not a readable gzip file ({}); it is truncated or corrupt. '
            'Replace it with a good copy.'.format(path, e))


def _matches(raw, gz, checksum):
    md5_gz, sha256_raw = checksum
    if gz is not None and hashlib.md5(gz).hexdigest() == md5_gz:
        return True
    return hashlib.sha256(raw).hexdigest() == sha256_raw


def _parse_idx(path, raw, kind):
    """The array in an IDX file of unsigned bytes, its size checked.

    ``kind`` is ``'image'`` (3 dimensions) or ``'label'`` (1 dimension).
    """
    magic, ndim, other = IDX_KINDS[kind]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise errors.DatasetError(
            '{} is too short ({} bytes) for an IDX {} header; '
            'it is truncated.'.format(path, len(raw), kind))
    fields = [int(f) for f in numpy.frombuffer(raw, '>u4', 1 + ndim)]
    if fields[0] != magic:
        raise errors.DatasetError(
            '{} is not an IDX {} file: magic number {:#010x}, expected '
            '{:#010x}. Is it {} file, or another format?'.format(
                path, kind, fields[0], magic, other))
    shape = fields[1:]
    expected = header + int(numpy.prod(shape))
    if len(raw) != expected:
        raise errors.DatasetError(
            '{} should be {} bytes for {} {}s but is {}; it is {}. '
            'Replace it with a good copy.'.format(
                path, expected, shape[0], kind, len(raw),
                'truncated' if len(raw) < expected else 'followed by junk'))
    if shape[0] == 0:
        raise errors.DatasetError('{} holds no {}s.'.format(path, kind))
    return numpy.frombuffer(raw, numpy.uint8, offset=header).reshape(shape)


def _parse_images(path, raw):
    images = _parse_idx(path, raw, 'image')
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise errors.DatasetError(
            '{} holds {}x{} images; the network takes {}x{} (MNIST '
            'layout).'.format(path, *images.shape[1:], IMAGE_SIDE,
                              IMAGE_SIDE))
    return images.reshape(len(images), -1)


def _parse_labels(path, raw):
    labels = _parse_idx(path, raw, 'label')
    if len(labels) and labels.max() >= N_CLASSES:
        raise errors.DatasetError(
            '{} has label {}; the network has {} classes (0-{}).'.format(
                path, labels.max(), N_CLASSES, N_CLASSES - 1))
    return labels


def _read(path, checksum, gzipped=None):
    """Returns the decompressed bytes of ``path`` and whether it is MNIST.

    ``gzipped`` defaults to whether the name ends in ``.gz``.
    """
    if gzipped is None:
        gzipped = path.endswith('.gz')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except IsADirectoryError:
        raise errors.DatasetError('{} is a directory, not an IDX file.'.format(
            path))
    except OSError as e:
        raise errors.DatasetError('cannot read {}: {}'.format(
            path, e.strerror))
    if not gzipped:
        return data, _matches(data, None, checksum)
    raw = _decompress(path, data)
    return raw, _matches(raw, data, checksum)


def read_images(path):
    """The uint8 images ``(N, 784)`` of an IDX file (gzipped if the name
    ends in ``.gz``); errors.DatasetError if it is not MNIST-shaped IDX."""
    raw, _ = _read(path, (None, None))
    return _parse_images(path, raw)


def read_labels(path):
    """The uint8 labels of an IDX file, checked to be 0-9."""
    raw, _ = _read(path, (None, None))
    return _parse_labels(path, raw)


def _find_local(directory, name):
    candidates = [os.path.join(directory, name + ext) for ext in ('.gz', '')]
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
        raise errors.DatasetError(
            '{} is missing from {}: expected {} or {} (IDX format, as '
            'published with MNIST).'.format(
                name, directory, *[os.path.basename(p) for p in candidates]))
    return path


def _to_arrays(files):
    """``files``: name -> (path, raw bytes); returns ``(train, test)``,
    each ``(uint8 images (N, 784), uint8 labels (N,))``."""
    splits = []
    for _, images_name, labels_name in SPLITS:
        images_path, images_raw = files[images_name]
        labels_path, labels_raw = files[labels_name]
        images = _parse_images(images_path, images_raw)
        labels = _parse_labels(labels_path, labels_raw)
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


def _load_dir(directory, checksums):
    if not os.path.isdir(directory):
        raise errors.DatasetError(
            'dataset directory {} {}; give a directory that holds the four '
            'MNIST IDX files.'.format(
                directory, 'is a file' if os.path.exists(directory)
                else 'does not exist'))
    files = {}
    others = []
    for name, checksum in checksums.items():
        path = _find_local(directory, name)
        raw, is_mnist = _read(path, checksum)
        files[name] = path, raw
        if not is_mnist:
            others.append(path)
    arrays = _to_arrays(files)
    if others:
        _notice('{} {} not the canonical MNIST (checksum differs); using '
                'it as a data set in the same IDX layout.'.format(
                    ', '.join(others), 'is' if len(others) == 1 else 'are'))
    return arrays


class _Rejected(Exception):
    """A download that failed or did not verify; the message says why."""


def _download(url, path, checksum):
    """Fetches ``url`` to ``path`` if it verifies; returns the decompressed
    bytes, or raises _Rejected."""
    try:
        with atomic_write(path, 'wb') as f:
            try:
                with urllib.request.urlopen(
                        url, timeout=DOWNLOAD_TIMEOUT) as response:
                    gz = response.read()
            except urllib.error.HTTPError as e:
                raise _Rejected('HTTP {} {}'.format(e.code, e.reason))
            except (urllib.error.URLError, OSError) as e:
                raise _Rejected(str(getattr(e, 'reason', e)))
            try:
                raw = _decompress(url, gz)
            except errors.DatasetError:
                raise _Rejected('not a gzip file')
            if not _matches(raw, gz, checksum):
                raise _Rejected('checksum mismatch')
            f.write(gz)
    except OSError as e:
        raise errors.DatasetError(
            'cannot write to the MNIST cache {}: {}. Set '
            'CHAINER_DATASET_ROOT to a writable directory, or pass '
            '--dataset-dir.'.format(os.path.dirname(path), e.strerror))
    return raw


def _cached(directory, name, mirrors, checksum):
    """Decompressed bytes of the verified cached ``name``, downloading it
    when missing or failing verification."""
    path = os.path.join(directory, name + '.gz')
    if os.path.isfile(path):
        try:
            raw, is_mnist = _read(path, checksum)
        except errors.DatasetError:
            is_mnist = False
        if is_mnist:
            return path, raw
        _notice('cached {} fails verification; downloading it '
                'again.'.format(path))
        os.remove(path)
    failures = []
    for mirror in mirrors:
        url = mirror + name + '.gz'
        print('Downloading {}'.format(url), file=sys.stderr)
        try:
            return path, _download(url, path, checksum)
        except _Rejected as e:
            failures.append('  {}: {}'.format(url, e))
    raise errors.DatasetError(
        'could not download {} from any mirror:\n{}\nDownload the four '
        'MNIST files by hand and pass their directory with --dataset-dir '
        '(or set MNIST_DIR).'.format(name + '.gz', '\n'.join(failures)))


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
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise errors.DatasetError(
            'cannot create the MNIST cache {}: {}. Set CHAINER_DATASET_ROOT '
            'to a writable directory, or pass --dataset-dir.'.format(
                cache_dir, e.strerror))
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
    if not validation:
        return train, None, test
    if validation >= len(train):
        raise errors.DatasetError(
            '--validation {} leaves no training images (the training set '
            'has {}).'.format(validation, len(train)))
    train, held_out = chainer.datasets.split_dataset(
        train, len(train) - validation)
    return train, held_out, test
