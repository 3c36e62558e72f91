"""SVHN from its format-2 ``.mat`` files: a directory at hand, a verified
cache, or a download.

:func:`get_svhn` returns float32 images ``(N, 3, 32, 32)`` in ``[0, 1]``
and int32 labels 0-9 (the files' class 10, the digit 0, becomes 0) of
the cropped-digits version: 73257 ``train``, 26032 ``test`` and 531131
``extra`` images. It looks, in this order, at

1. ``dataset_dir`` (``--dataset-dir``) or else the ``SVHN_DIR``
   environment variable: a directory holding ``train_32x32.mat`` and
   ``test_32x32.mat``, and ``extra_32x32.mat`` if at hand (it is
   optional there). Any files in the same layout are accepted; one that
   is not SVHN's is reported in a notice.
2. A cache in Chainer's dataset root
   (``$CHAINER_DATASET_ROOT/pfnet/chainer/svhn``), each file verified by
   its MD5 each time it is used.
3. A download of the three files from their official source
   (:data:`URL`), each verified by its MD5 before it is renamed into the
   cache.

The files are MATLAB 5.0 (level 5) MAT files, their variables possibly
zlib-compressed. They are read by a reader of this module's own, which
runs no code from the file and reads only numeric matrices: ``X``, uint8
of shape ``(32, 32, 3, N)`` (MATLAB's column-major order: row, column,
channel, image) and ``y``, of shape ``(N, 1)``, integers 1-10. It
allocates only what a matrix's dimensions promise, once that promise has
been checked against :data:`MAX_ARRAY_BYTES` and against what the file
can hold (a compressed matrix inflates at most :data:`DEFLATE_RATIO`
times its compressed size), and reads in chunks, so that a file that
lies costs what it holds.

The validation split is the paper's (its authors' svhn.py, through
pylearn2): 400 images of each class from ``train`` and 200 of each class
from ``extra``, 6000 in all, taken here as the first of each class in
file order; the rest of ``train`` and ``extra`` is trained on.
"""
import math
import os
import struct
import zlib

import numpy

import chainer

from quantized_net import errors
from quantized_net import untrusted_file
from quantized_net.training import downloads
from quantized_net.training import mnist

#: Where the format-2 files are served.
URL = 'http://ufldl.stanford.edu/housenumbers/'
#: split -> (file name, MD5 as published)
FILES = {
    'train': ('train_32x32.mat', 'e26dedcc434d2e4c54c9b2d4a06d8373'),
    'test': ('test_32x32.mat', 'eb5a983be6a315427106f1b69d2c9b4b'),
    'extra': ('extra_32x32.mat', 'a93ce644f1a588dc4d68dda5feec44a7'),
}
#: An image as the networks see it: channels, height, width.
IMAGE_SHAPE = (3, 32, 32)
N_CLASSES = 10
#: The shape of ``X`` in the file, in MATLAB's order, but its last
#: dimension (the images).
X_SHAPE = (32, 32, 3)
#: The most bytes one matrix may hold, checked against its dimensions
#: before anything is allocated: 2 GiB, 699050 images (``extra``, the
#: largest, holds 531131, 1.6 GB).
MAX_ARRAY_BYTES = 2 ** 31
#: The most a compressed element may inflate to, per compressed byte:
#: what deflate can make of a byte, and a little more.
DEFLATE_RATIO = 1032
#: The most bytes a download may have (``extra_32x32.mat``: 1.3 GB).
MAX_DOWNLOAD_BYTES = 2 ** 31
#: Images of each class held out for validation, from each split, as the
#: paper's authors do.
VALIDATION_PER_CLASS = {'train': 400, 'extra': 200}
#: Images held out in all: 6000.
VALIDATION = N_CLASSES * sum(VALIDATION_PER_CLASS.values())
#: The environment variable naming a directory at hand.
ENVIRONMENT = 'SVHN_DIR'

HEADER_BYTES = 128
#: MAT-file data types (miINT8, ...) -> NumPy type (without byte order).
DATA_TYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4',
              7: 'f4', 9: 'f8', 12: 'i8', 13: 'u8'}
MI_INT8, MI_UINT8, MI_INT32, MI_UINT32 = 1, 2, 5, 6
MI_MATRIX, MI_COMPRESSED = 14, 15
#: MATLAB array classes; 6 to 15 are the numeric ones.
CLASSES = {1: 'cell', 2: 'struct', 3: 'object', 4: 'char', 5: 'sparse',
           6: 'double', 7: 'single', 8: 'int8', 9: 'uint8', 10: 'int16',
           11: 'uint16', 12: 'int32', 13: 'uint32', 14: 'int64',
           15: 'uint64'}
UINT8_CLASS = 9
COMPLEX_FLAG = 0x800
#: The most dimensions, and the longest name, a variable may have.
MAX_DIMENSIONS = 32
MAX_NAME = 63


def default_cache_dir():
    """Where verified downloads are kept, inside Chainer's dataset
    root."""
    return downloads.cache_dir('pfnet', 'chainer', 'svhn')


def _fail(where, message):
    return errors.DatasetError('{} {}'.format(where, message))


class _Part:
    """``size`` bytes of the file ``f`` from where it is, read on demand
    (as a bytearray, which NumPy takes without a copy)."""

    def __init__(self, f, size):
        self._f = f
        self._left = size

    def read(self, count):
        data = downloads.read_at_most(self._f, min(count, self._left))
        self._left -= len(data)
        return data


class _Inflating:
    """What the ``size`` compressed bytes of ``f`` from where it is
    inflate to, inflated on demand, no more than asked (as a
    bytearray)."""

    def __init__(self, f, size, where):
        self._f = f
        self._left = size
        self._where = where
        self._inflate = zlib.decompressobj()
        self._tail = b''

    def read(self, count):
        out = bytearray()
        try:
            while len(out) < count and not self._inflate.eof:
                if not self._tail and self._left:
                    self._tail = self._f.read(
                        min(downloads.READ_CHUNK, self._left))
                    if not self._tail:
                        raise _fail(self._where, 'ends early; the file is '
                                    'truncated.')
                    self._left -= len(self._tail)
                got = self._inflate.decompress(self._tail, count - len(out))
                self._tail = self._inflate.unconsumed_tail
                out += got
                if not got and not self._tail and not self._left:
                    break
        except zlib.error as e:
            raise _fail(self._where, 'holds compressed data that zlib cannot '
                        'read ({}); the file is corrupt.'.format(e))
        return out

    def finish(self):
        """Checks that the stream ends here, with its checksum, and that
        nothing follows it."""
        if self.read(1):
            raise _fail(self._where, 'inflates to more than its variable; '
                        'the file is corrupt.')
        if not self._inflate.eof:
            raise _fail(self._where, 'holds compressed data that ends early; '
                        'the file is truncated or corrupt.')
        if self._inflate.unused_data or self._tail or self._left:
            raise _fail(self._where, 'holds bytes after its compressed data; '
                        'the file is corrupt.')


def _padded(count):
    return -(-count // 8) * 8


class _Matrix:
    """Reads the subelements of a matrix of ``size`` bytes from
    ``stream``, each checked to lie within it."""

    def __init__(self, stream, size, order, path, position):
        self.stream = stream
        self.left = size
        self.order = order
        self.path = path
        self.position = position
        self.where = '{} (the element at byte {})'.format(path, position)

    def _read(self, count):
        data = self.stream.read(count)
        if len(data) < count:
            raise _fail(self.where, 'ends inside a variable; the file is '
                        'truncated.')
        return data

    def header(self, what):
        """``(type, bytes, data or None)`` of the next subelement, ``data``
        that of a small element (at most 4 bytes, in its tag)."""
        if self.left < 8:
            raise _fail(self.where, 'has no room left for the {} of a '
                        'variable; it is corrupt.'.format(what))
        tag = self._read(8)
        self.left -= 8
        first, second = struct.unpack(self.order + 'II', tag)
        if first >> 16:  # small: the size in the high half of the type
            count = first >> 16
            if count > 4:
                raise _fail(self.where, 'has a small data element of {} '
                            'bytes (at most 4); it is corrupt.'.format(count))
            return first & 0xFFFF, count, tag[4:4 + count]
        if _padded(second) > self.left:
            raise _fail(self.where, 'has {} of {} bytes, more than is left '
                        'of its variable ({}); it is corrupt.'.format(
                            what, second, self.left))
        return first, second, None

    def data(self, count, small):
        """The ``count`` bytes of a subelement whose :meth:`header` said
        ``small``, its padding skipped."""
        if small is not None:
            return small
        data = self._read(count)
        self._read(_padded(count) - count)
        self.left -= _padded(count)
        return data

    def element(self, what, types, most):
        """The bytes of the next subelement, of one of ``types`` and at
        most ``most`` bytes."""
        kind, count, small = self.header(what)
        if kind not in types or count > most:
            raise _fail(self.where, 'has {} of type {} and {} bytes; it is '
                        'not a MAT file variable.'.format(what, kind, count))
        return self.data(count, small)


def _variable(matrix, wanted, limit, room):
    """``(name, value)`` of the matrix ``matrix``: ``value`` is None for a
    variable not in ``wanted`` (not read further), else ``(array class,
    dimensions, values)``, ``values`` a flat array of no more than
    ``limit`` bytes (``room``: what sets that limit, in words)."""
    flags = matrix.element('array flags', (MI_UINT32,), 8)
    if len(flags) != 8:
        raise _fail(matrix.where, 'has array flags of {} bytes (8); it is '
                    'corrupt.'.format(len(flags)))
    flags = struct.unpack(matrix.order + 'II', flags)[0]
    dims = matrix.element('dimensions', (MI_INT32,), 4 * MAX_DIMENSIONS)
    if len(dims) < 8 or len(dims) % 4:
        raise _fail(matrix.where, 'has dimensions of {} bytes (2 to {} '
                    'numbers of 4); it is corrupt.'.format(
                        len(dims), MAX_DIMENSIONS))
    dims = struct.unpack('{}{}i'.format(matrix.order, len(dims) // 4), dims)
    name = bytes(matrix.element('a name', (MI_INT8,), MAX_NAME))
    if name not in wanted:
        return name, None
    where = '{} variable {} (the element at byte {})'.format(
        matrix.path, name.decode(), matrix.position)
    kind = flags & 0xFF
    if not 6 <= kind <= 15:
        raise _fail(where, 'is a {} array, not a numeric one.'.format(
            CLASSES.get(kind, 'class {}'.format(kind))))
    if flags & COMPLEX_FLAG:
        raise _fail(where, 'is complex; SVHN\'s are real.')
    if min(dims) < 0:
        raise _fail(where, 'has a negative dimension ({}); it is '
                    'corrupt.'.format('x'.join(map(str, dims))))
    data_type, count, small = matrix.header('values')
    if data_type not in DATA_TYPES:
        raise _fail(where, 'holds values of MAT type {}, not a number '
                    'type.'.format(data_type))
    dtype = numpy.dtype(matrix.order + DATA_TYPES[data_type])
    # Python integers: no dimensions overflow the product.
    promise = math.prod(dims) * dtype.itemsize
    for most, what in ((MAX_ARRAY_BYTES, 'a variable may hold'),
                       (limit, room)):
        if promise > most:
            raise _fail(where, 'promises {} values of {} bytes ({} bytes), '
                        'more than {} ({} bytes); it is corrupt.'.format(
                            'x'.join(map(str, dims)), dtype.itemsize,
                            promise, what, most))
    if count != promise:
        raise _fail(where, 'has {} bytes of values, but its {} values of {} '
                    'bytes need {}; it is corrupt.'.format(
                        count, 'x'.join(map(str, dims)), dtype.itemsize,
                        promise))
    values = numpy.frombuffer(matrix.data(count, small), dtype)
    if matrix.left:
        raise _fail(where, 'holds {} bytes beyond its values; it is '
                    'corrupt.'.format(matrix.left))
    return name, (kind, dims, values)


def _order(head, path):
    """The byte order (``'<'`` or ``'>'``) the MAT file header ``head``
    declares, checked to be a level 5 file's."""
    if len(head) < HEADER_BYTES:
        raise errors.DatasetError(
            '{} is too short ({} bytes) for a MAT file header; it is '
            'truncated.'.format(path, len(head)))
    if head.startswith(b'MATLAB 7.3 MAT-file'):
        raise errors.DatasetError(
            '{} is a MATLAB 7.3 (HDF5) MAT file; give SVHN\'s format-2 files '
            'as published (MATLAB 5.0 MAT files).'.format(path))
    order = {b'IM': '<', b'MI': '>'}.get(head[126:128])
    version = None if order is None else \
        struct.unpack(order + 'H', head[124:126])[0]
    if version != 0x0100:
        raise errors.DatasetError(
            '{} is not a MATLAB 5.0 MAT file (its header ends {!r}); '
            'SVHN\'s format-2 files are.'.format(path, head[124:128]))
    return order


def _variables(f, size, path):
    """``{b'X': value, b'y': value}`` of the MAT file ``f`` of ``size``
    bytes (values as :func:`_variable` gives them)."""
    order = _order(bytes(downloads.read_at_most(f, HEADER_BYTES)), path)
    found = {}
    position = HEADER_BYTES
    while position < size:
        where = '{} (the element at byte {})'.format(path, position)
        f.seek(position)
        tag = bytes(downloads.read_at_most(f, 8))
        if len(tag) < 8:
            raise _fail(where, 'is cut short; the file is truncated.')
        kind, count = struct.unpack(order + 'II', tag)
        if count > size - position - 8:
            raise _fail(where, 'promises {} bytes, more than the file holds '
                        'after it ({}); the file is truncated.'.format(
                            count, size - position - 8))
        if kind == MI_MATRIX:
            stream, limit = _Part(f, count), count
            room = 'its element holds'
            matrix = _Matrix(stream, count, order, path, position)
        elif kind == MI_COMPRESSED:
            stream = _Inflating(f, count, where)
            limit = DEFLATE_RATIO * count
            room = 'its compressed data can hold'
            inner = stream.read(8)
            if len(inner) < 8:
                raise _fail(where, 'inflates to less than a data element; '
                            'the file is corrupt.')
            inner_kind, inner_count = struct.unpack(order + 'II', inner)
            if inner_kind != MI_MATRIX:
                raise _fail(where, 'inflates to a data element of type {}, '
                            'not a matrix.'.format(inner_kind))
            matrix = _Matrix(stream, inner_count, order, path, position)
        else:
            raise _fail(where, 'is a data element of type {}, where a '
                        'variable belongs; it is not a MAT file.'.format(
                            kind))
        if matrix.left:  # an empty matrix has no subelements
            name, value = _variable(matrix, (b'X', b'y'), limit, room)
            if value is not None:
                if name in found:
                    raise _fail(where, 'holds a second variable {}.'.format(
                        name.decode()))
                if kind == MI_COMPRESSED:
                    stream.finish()
                found[name] = value
        position += 8 + count
    return found


def _images_and_labels(variables, path):
    for name in ('X', 'y'):
        if name.encode() not in variables:
            raise errors.DatasetError(
                '{} holds no variable {}; it is not an SVHN format-2 '
                'file.'.format(path, name))
    kind, dims, pixels = variables[b'X']
    if kind != UINT8_CLASS or pixels.dtype != numpy.uint8:
        raise errors.DatasetError(
            '{} variable X is {} stored as {}, not uint8.'.format(
                path, CLASSES[kind], pixels.dtype))
    if len(dims) != 4 or tuple(dims[:3]) != X_SHAPE or dims[3] == 0:
        raise errors.DatasetError(
            '{} variable X is {}, not 32x32x3xN images.'.format(
                path, 'x'.join(map(str, dims))))
    count = dims[3]
    _, dims, labels = variables[b'y']
    if tuple(dims) != (count, 1):
        raise errors.DatasetError(
            '{} variable y is {}, not {}x1: a label for each of its {} '
            'images.'.format(path, 'x'.join(map(str, dims)), count, count))
    bad = ~numpy.isin(labels, numpy.arange(1, N_CLASSES + 1))
    if bad.any():
        index = int(numpy.argmax(bad))
        raise errors.DatasetError(
            '{} has label {} (image {}); SVHN\'s labels are 1-10, 10 for the '
            'digit 0.'.format(path, labels[index], index))
    # Column-major (row, column, channel, image): C-ordered, the axes are
    # reversed; the rows and columns go back in place.
    images = pixels.reshape(count, 3, 32, 32).transpose(0, 1, 3, 2)
    return (numpy.ascontiguousarray(images),
            (labels % N_CLASSES).astype(numpy.uint8))


def read_mat(path):
    """The images and labels of an SVHN format-2 ``.mat`` file.

    Args:
        path (str): A MATLAB 5.0 MAT file holding ``X`` (uint8, 32 x 32 x
            3 x N) and ``y`` (N x 1, 1-10), its variables compressed or
            not; any other variable is skipped unread.

    Returns:
        tuple: ``(images, labels)``, uint8 arrays of shapes
        ``(N, 3, 32, 32)`` and ``(N,)``, labels 0-9 (10, the digit 0,
        becomes 0).

    Raises:
        errors.DatasetError: ``path`` is not a regular file, not a MATLAB
            5.0 MAT file, is truncated or corrupt, lacks ``X`` or ``y``,
            has them of another type or shape, has a label beyond 1-10,
            or promises more than :data:`MAX_ARRAY_BYTES`: one line naming
            the file.
    """
    with untrusted_file.open_regular(path, errors.DatasetError) as f:
        try:
            variables = _variables(f, os.fstat(f.fileno()).st_size, path)
        except OSError as e:
            raise errors.DatasetError('cannot read {}: {}.'.format(
                path, e.strerror or e))
    return _images_and_labels(variables, path)


def _load_dir(directory, checksums):
    downloads.check_directory(
        directory, 'train_32x32.mat and test_32x32.mat (SVHN format 2)')
    splits, others = {}, []
    for split, (name, _) in FILES.items():
        path = downloads.locate(directory, [name])
        if path is None and split == 'extra':
            splits[split] = None
            continue
        if path is None:
            raise errors.DatasetError(
                '{} is missing from {}: SVHN (format 2) is train_32x32.mat, '
                'test_32x32.mat and, optionally, extra_32x32.mat.'.format(
                    name, directory))
        splits[split] = read_mat(path)
        if downloads.file_md5(path) != checksums[split]:
            others.append(path)
    if others:
        downloads.notice(
            '{} {} not SVHN\'s (checksum differs); using {} as a data set in '
            'the same layout.'.format(
                ', '.join(others), 'is' if len(others) == 1 else 'are',
                'it' if len(others) == 1 else 'them'))
    return splits


def read_svhn(dataset_dir=None, cache_dir=None, url=URL, checksums=None):
    """SVHN as its 8-bit pixels: ``{'train': (images, labels), 'test':
    ..., 'extra': ... or None}``, uint8 arrays of shapes
    ``(N, 3, 32, 32)`` and ``(N,)``.

    Args:
        dataset_dir (str): Directory with ``train_32x32.mat``,
            ``test_32x32.mat`` and, if at hand, ``extra_32x32.mat``
            (``'extra'`` is None without it). Defaults to the ``SVHN_DIR``
            environment variable; when neither is set, the verified cache
            (downloading what is missing, all three files) is used.
        cache_dir (str): Cache directory; defaults to
            :func:`default_cache_dir`.
        url (str): Where the files are served (``url + name``).
        checksums (dict): ``split -> MD5``; defaults to the published ones
            (:data:`FILES`).

    Raises:
        errors.DatasetError: A file is missing, truncated, corrupt or not
            in SVHN's format-2 layout, or no source served a verified
            copy: one line naming the file.
    """
    checksums = checksums or {split: md5 for split, (_, md5) in
                              FILES.items()}
    dataset_dir = dataset_dir or os.environ.get(ENVIRONMENT)
    if dataset_dir:
        return _load_dir(dataset_dir, checksums)
    cache_dir = cache_dir or default_cache_dir()
    downloads.make_cache(cache_dir, 'SVHN')
    splits = {}
    for split, (name, _) in FILES.items():
        path = downloads.cached(
            cache_dir, name, [url + name], checksums[split],
            MAX_DOWNLOAD_BYTES, 'SVHN',
            'Download the SVHN format-2 files by hand and pass their '
            'directory with --dataset-dir (or set {}).'.format(ENVIRONMENT))
        splits[split] = read_mat(path)
    return splits


def _scaled(pieces):
    """The uint8 image arrays ``pieces`` one after another, as
    :func:`mnist.scaled` gives them (each pixel over 255, in float32),
    without a uint8 copy of them all."""
    images = numpy.empty((sum(len(p) for p in pieces),) + IMAGE_SHAPE,
                         numpy.float32)
    start = 0
    for piece in pieces:
        part = images[start:start + len(piece)]
        part[...] = piece
        part *= 1. / mnist.PIXEL_MAX
        start += len(piece)
    return images


def _dataset(pieces):
    """A :class:`~chainer.datasets.TupleDataset` of ``[(images,
    labels)]`` one after another."""
    return chainer.datasets.TupleDataset(
        _scaled([images for images, _ in pieces]),
        numpy.concatenate([labels for _, labels in pieces]).astype(
            numpy.int32))


def get_svhn(dataset_dir=None, **options):
    """SVHN as ``(train, test, extra or None)``
    :class:`~chainer.datasets.TupleDataset`: each example a float32 image
    ``(3, 32, 32)`` in ``[0, 1]`` (each pixel over 255, rounded as
    :func:`mnist.scaled` rounds) and an int32 label 0-9. Reads the files
    as :func:`read_svhn` does, with the same arguments."""
    splits = read_svhn(dataset_dir, **options)
    return tuple(None if splits[split] is None else _dataset([splits[split]])
                 for split in ('train', 'test', 'extra'))


def _first_of_each_class(labels, count, name, validation):
    """Indices of the first ``count`` images of each class in
    ``labels``, in file order."""
    held = []
    for label in range(N_CLASSES):
        of_class = numpy.flatnonzero(labels == label)
        if len(of_class) < count:
            raise errors.DatasetError(
                '--validation {} holds out {} images of class {} from {}, '
                'which has {}.'.format(validation, count, label, name,
                                       len(of_class)))
        held.append(of_class[:count])
    return numpy.sort(numpy.concatenate(held))


def validation_split(validation, has_extra):
    """Images of each class held out from each split for ``validation``
    images in all: ``{'train': count, 'extra': count}``, in the paper's
    proportion (two from ``train`` for one from ``extra``: 400 and 200 for
    6000); from ``train`` only, as many, when there is no ``extra``.

    Raises:
        errors.DatasetError: ``validation`` is not a multiple of 10.
    """
    per_class, rest = divmod(validation, N_CLASSES)
    if rest:
        raise errors.DatasetError(
            '--validation {} is not a multiple of {}: SVHN\'s validation '
            'set holds as many images of each class.'.format(
                validation, N_CLASSES))
    from_extra = per_class // 3 if has_extra else 0
    from_train = per_class - per_class // 3
    return {'train': from_train, 'extra': from_extra}


def load_splits(dataset_dir=None, validation=None):
    """What a script trains and evaluates on: ``(train, validation,
    test)``.

    Args:
        dataset_dir (str): As :func:`read_svhn`.
        validation (int): Images held out, as many of each class, the first
            of each class in file order, two thirds from ``train`` and a
            third from ``extra`` (:func:`validation_split`); None for the
            paper's :data:`VALIDATION` (400 of each class from ``train``
            and 200 from ``extra``); 0 for none (validation is then None).
            ``train`` and ``extra`` less what is held out are trained on.
            Without ``extra``, only ``train``'s part is held out, and a
            notice says so.

    Raises:
        errors.DatasetError: As :func:`read_svhn`, or ``validation`` is
            not a multiple of 10, asks for more images of a class than a
            split has, or leaves no training images.
    """
    splits = read_svhn(dataset_dir)
    if validation is None:
        validation = VALIDATION
    used = [split for split in ('train', 'extra')
            if splits[split] is not None]
    if not validation:
        return (_dataset([splits[split] for split in used]), None,
                _dataset([splits['test']]))
    counts = validation_split(validation, 'extra' in used)
    if 'extra' not in used:
        downloads.notice(
            'no {} at hand: the validation set is the first {} images of '
            'each class of {} only ({} in all).'.format(
                FILES['extra'][0], counts['train'], FILES['train'][0],
                N_CLASSES * counts['train']))
    kept, held_out = [], []
    for split in used:
        images, labels = splits[split]
        held = _first_of_each_class(labels, counts[split], FILES[split][0],
                                    validation)
        keep = numpy.ones(len(labels), bool)
        keep[held] = False
        kept.append((images[keep], labels[keep]))
        held_out.append((images[held], labels[held]))
    if not sum(len(labels) for _, labels in kept):
        raise errors.DatasetError(
            '--validation {} leaves no training images.'.format(validation))
    return _dataset(kept), _dataset(held_out), _dataset([splits['test']])
