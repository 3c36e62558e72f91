"""Reading the ``.npz`` files of a result directory (a model, a snapshot)
as data, never as code, and never more of it than it may hold.

:func:`read_npz` never unpickles: a file that is not an archive of plain
arrays (a pickle, an object array, a damaged or foreign file) is refused
with one line before anything in it runs. It is bounded: only a regular
file is opened (a FIFO or a device is refused before anything waits on
it), and each member's header is checked against what the zip directory
says it inflates to, and that against the bytes the file stores for it,
before any data is read, so a file cannot make it allocate more than the
archive declares, nor declare more than its size can hold; the arrays
together may hold no more than a limit.
"""
import errno
import os
import zipfile

import numpy

import chainer

from quantized_net import errors
from quantized_net import untrusted_file

#: The most bytes of arrays :func:`read_npz` reads unless told otherwise:
#: a snapshot of ``--preset bnn --unit 4096 --layers 3`` (its model and
#: Adam's two moments, about 0.45 GB) fits four times over.
MAX_ARRAY_BYTES = 2 ** 31
#: The most a deflated member may inflate to per byte it stores: deflate
#: codes at most 258 bytes in a little more than two bits.
MAX_DEFLATE_RATIO = 1032
# What a deflated stream of a few bytes may add to that ratio.
_DEFLATE_SLACK = 2 ** 10
_ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')
PICKLED = 'it holds pickled data, which could run any code'
NOT_AN_ARCHIVE = 'empty, damaged, or not an .npz file'


def _refuse(path, why):
    raise errors.ResultError('{} is not an archive of arrays ({}); it was not '
                             'loaded.'.format(path, why))


def describe(error):
    """The exception ``error`` in a few words on one line, for a message
    that says why a file was refused: what a damaged file put in it (a
    member's name, a header's text) cannot break the line nor reach the
    terminal as control characters."""
    return errors.one_line(' '.join(str(error).split())) or \
        type(error).__name__


def is_damage(error):
    """Whether the :class:`OSError` ``error``, raised while an archive was
    read, comes from its bytes (a seek to an offset it gave, a stream
    that does not decompress) rather than from the machine (a disk that
    fails to read)."""
    return error.errno in (None, errno.EINVAL)


class NotAnArchive(ValueError):
    """A file that is not a zip archive at all: the reason, in words."""


class SingleArray(NotAnArchive):
    """A ``.npy`` file (one array) where an archive of them was wanted."""


class NotAnArray(ValueError):
    """A member of an archive that is not a ``.npy`` file NumPy reads."""


def open_archive(f):
    """The archive (a ``numpy.lib.npyio.NpzFile``) in the open binary file
    ``f``, which must stay open while it is used. Only its first bytes are
    read to tell what it is: a single array or a pickle is never read.

    Raises:
        SingleArray: ``f`` holds a ``.npy`` file.
        NotAnArchive: ``f`` holds a pickle, or neither an archive nor an
            array.
        Exception: Whatever reading the zip directory of a damaged archive
            raises (callers catch :class:`Exception`).
    """
    head = f.read(len(numpy.lib.format.MAGIC_PREFIX))
    f.seek(0)
    if head.startswith(numpy.lib.format.MAGIC_PREFIX):
        raise SingleArray('a single array')
    if head[:1] == b'\x80':  # a pickle starts with its protocol opcode
        raise NotAnArchive(PICKLED)
    if not head.startswith(_ZIP_MAGIC):
        raise NotAnArchive(NOT_AN_ARCHIVE)
    return numpy.load(f, allow_pickle=False)


def _archive_size(archive):
    """The size in bytes of the file ``archive`` was read from, or None
    where it is not a file of the system's (a buffer)."""
    try:
        return os.fstat(archive.zip.fp.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # io: UnsupportedOperation
        return None


def _check_stored(info, name, size):
    """Refuses a member whose zip directory entry promises more data than
    the file of ``size`` bytes can hold, or that NumPy did not write."""
    if info.flag_bits & 0x1:
        raise NotAnArray('{} is encrypted'.format(name))
    if info.compress_type == zipfile.ZIP_STORED:
        fits = info.file_size == info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        fits = info.file_size <= (MAX_DEFLATE_RATIO * info.compress_size +
                                  _DEFLATE_SLACK)
    else:
        raise NotAnArray('{} is compressed by method {}, which NumPy does '
                         'not write'.format(name, info.compress_type))
    if not fits:
        raise ValueError('{} claims {} bytes but stores {}'.format(
            name, info.file_size, info.compress_size))
    if size is not None and info.header_offset + info.compress_size > size:
        raise ValueError('{} ends beyond the end of the file'.format(name))


def member_header(archive, name):
    """What member ``name`` of the open archive ``archive`` (a
    ``numpy.lib.npyio.NpzFile``) declares, read from its header alone:
    ``(dtype, shape, declared, held)``, the bytes of data its header
    declares and those the zip directory says follow the header. The zip directory's entry is checked
    first against what the file can hold (stored data no larger than the
    file, inflating no more than deflate can), so ``held`` is bounded by
    the file's size; nothing larger than the header is read, so a member
    may be checked before it is loaded.

    Raises:
        NotAnArray: The member is not a ``.npy`` file, or of a version or
            a compression NumPy does not write.
        ValueError: Its header or its zip entry is malformed.
        Exception: Whatever reading a damaged header raises (callers catch
            :class:`Exception`).
    """
    try:
        info = archive.zip.getinfo(name + '.npy')
    except KeyError:
        raise NotAnArray('{} is not an array'.format(name))
    _check_stored(info, name, _archive_size(archive))
    with archive.zip.open(info) as f:
        try:
            version = numpy.lib.format.read_magic(f)
        except ValueError:  # not a .npy file: NumPy would return its bytes
            raise NotAnArray('{} is not an array'.format(name))
        read = {(1, 0): numpy.lib.format.read_array_header_1_0,
                (2, 0): numpy.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise NotAnArray('{} is a .npy file of version {}.{}'.format(
                name, *version))
        shape, _, dtype = read(f)
        header = f.tell()
    if any(n < 0 for n in shape):
        raise ValueError('{} declares the shape {}'.format(name, shape))
    declared = dtype.itemsize * int(numpy.prod(shape, dtype=object))
    return dtype, shape, declared, info.file_size - header


def _check_member(archive, path, name):
    """The bytes member ``name`` holds; refuses it unless its header
    declares a plain array of exactly as many bytes as the zip directory
    says follow the header."""
    dtype, _, declared, held = member_header(archive, name)
    if dtype.hasobject:
        _refuse(path, PICKLED)
    if declared != held:
        _refuse(path, 'damaged: {} declares {} bytes but holds {}'.format(
            name, declared, held))
    return declared


def _read_arrays(archive, path, limit, names):
    names = [name for name in archive.files
             if names is None or name in names]
    total = 0
    for name in names:
        total += _check_member(archive, path, name)
    if total > limit:
        raise errors.ResultError(
            '{} holds {} bytes of arrays{}, more than the {} it may hold; it '
            'was not loaded.'.format(path, total, ' in {}'.format(
                ', '.join(names)) if len(names) < len(archive.files)
                else '', limit))
    return {name: archive[name] for name in names}


def read_npz(path, limit=MAX_ARRAY_BYTES, names=None, follow=True):
    """The arrays of the ``.npz`` file ``path``, by name, read without
    ever unpickling, without reading more than each member declares, and
    only if they hold ``limit`` bytes or fewer in all.

    Args:
        path (str): The file; it must be a regular file.
        limit (int): The most bytes the arrays read may hold together
            (default :data:`MAX_ARRAY_BYTES`).
        names (collection of str): Read only these members (those of
            them the archive holds); None for all.
        follow (bool): Whether a symbolic link at ``path`` is followed
            (or refused).

    Raises:
        errors.ResultError: ``path`` cannot be read, is not a regular file,
            is not an archive of plain arrays, or holds more than
            ``limit`` bytes of them; the message says which, in one line.
    """
    with untrusted_file.open_regular(path, errors.ResultError,
                                     follow=follow) as f:
        return read_open_npz(f, path, limit, names)


def _unreadable(path, e, why):
    """The one line of the :class:`OSError` ``e`` raised while ``path``
    was read: the machine's failure, or the file's damage (``why``)."""
    if not is_damage(e):
        raise errors.ResultError('cannot read {}: {}.'.format(
            path, e.strerror or e))
    _refuse(path, why)


def read_open_npz(f, path, limit=MAX_ARRAY_BYTES, names=None):
    """:func:`read_npz` of the file ``path`` already open in ``f`` (a
    regular file, opened in binary), which stays open."""
    try:
        archive = open_archive(f)
    except NotAnArchive as e:
        _refuse(path, str(e))
    except OSError as e:
        _unreadable(path, e, NOT_AN_ARCHIVE)
    except MemoryError:
        raise
    except Exception:  # the zip directory of a damaged file
        _refuse(path, NOT_AN_ARCHIVE)
    with archive:
        try:
            return _read_arrays(archive, path, limit, names)
        except (errors.Error, MemoryError):
            raise
        except NotAnArray as e:
            _refuse(path, describe(e))
        except OSError as e:
            _unreadable(path, e, 'damaged: {}'.format(describe(e)))
        except Exception as e:  # anything damaged bytes make NumPy raise
            _refuse(path, 'damaged: {}'.format(describe(e)))


def deserialize(arrays, obj, optional=None):
    """Fills ``obj`` (a link, a trainer) from ``arrays`` (what
    :func:`read_npz` returned). Keys for which ``optional(key)`` is true
    may be missing (the object keeps its own value). Other errors (a
    missing key, a shape that differs) propagate."""
    chainer.serializers.NpzDeserializer(
        arrays, ignore_names=lambda key: bool(
            optional and optional(key) and key not in arrays)).load(obj)


def load_npz(path, obj):
    """Fills ``obj`` from the ``.npz`` file ``path``, as
    ``chainer.serializers.load_npz`` does but without ever unpickling
    (see :func:`read_npz` and :func:`deserialize`)."""
    deserialize(read_npz(path), obj)
