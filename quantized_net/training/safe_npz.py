"""Reading the ``.npz`` files of a result directory (a model, a snapshot)
as data, never as code.

:func:`read_npz` never unpickles: a file that is not an archive of plain
arrays (a pickle, an object array, a damaged or foreign file) is refused
with one line before anything in it runs. It is bounded: each member's
header is checked against what the zip directory says it inflates to
before its data is read, so a file cannot make it allocate more than the
archive declares.
"""
import zipfile
import zlib

import numpy

import chainer

from quantized_net import errors

_PICKLED = 'it holds pickled data, which could run any code'


def _refuse(path, why):
    raise errors.ResultError('{} is not an archive of arrays ({}); it was not '
                             'loaded.'.format(path, why))


class NotAnArray(ValueError):
    """A member of an archive that is not a ``.npy`` file NumPy reads."""


def member_header(archive, name):
    """What member ``name`` of the open archive ``archive`` (a
    ``numpy.lib.npyio.NpzFile``) declares, read from its header alone:
    ``(dtype, shape, declared, held)``, the bytes of data its header
    declares and those the zip directory says follow the header. Nothing
    larger than the header is read, so a member may be checked before it
    is loaded.

    Raises:
        NotAnArray: The member is not a ``.npy`` file, or of a version
            NumPy does not read.
        ValueError: Its header is malformed.
    """
    info = archive.zip.getinfo(name + '.npy')
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
    declared = dtype.itemsize * int(numpy.prod(shape, dtype=object))
    return dtype, shape, declared, info.file_size - header


def _check_member(archive, path, name):
    """Refuses member ``name`` unless its header declares a plain array of
    exactly as many bytes as the zip directory says follow the header."""
    try:
        dtype, _, declared, held = member_header(archive, name)
    except NotAnArray as e:
        _refuse(path, str(e))
    if dtype.hasobject:
        _refuse(path, _PICKLED)
    if declared != held:
        _refuse(path, 'damaged: {} declares {} bytes but holds {}'.format(
            name, declared, held))


def read_npz(path):
    """The arrays of the ``.npz`` file ``path``, by name, read without
    ever unpickling and without reading more than each member declares.

    Raises:
        errors.ResultError: ``path`` cannot be read, or is not an archive
            of plain arrays; the message says which, in one line.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(2)
        archive = numpy.load(path, allow_pickle=False)
    except OSError as e:
        raise errors.ResultError('cannot read {}: {}.'.format(
            path, e.strerror or e))
    except (ValueError, EOFError, zipfile.BadZipFile):
        # A pickle starts with its protocol opcode, 0x80.
        _refuse(path, _PICKLED if head[:1] == b'\x80' else
                'empty, damaged, or not an .npz file')
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        _refuse(path, 'a single array')
    with archive:
        arrays = {}
        try:
            for name in archive.files:
                _check_member(archive, path, name)
                arrays[name] = archive[name]
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile,
                zlib.error) as e:
            _refuse(path, 'damaged: {}'.format(' '.join(str(e).split())))
    return arrays


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
