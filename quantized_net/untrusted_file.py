"""Reading a file that anyone may have written or named: only a regular
file, never more than it may hold, and JSON of bounded nesting.

Every command's input goes through here (a data set, a model, a
snapshot, ``args.json``, a log, a packed file), so that a FIFO, a device
or a directory given where a file is expected is refused in one line
before anything waits on it or reads from it without end, and a file can
make a command read no more than the limit its kind has.
"""
import json
import os
import re
import stat

import numpy

#: Deepest nesting of arrays and objects a JSON file may have: what the
#: project writes is at most three deep.
MAX_JSON_DEPTH = 32
#: JSON integers are those of 64 bits, as NumPy stores every count and
#: seed the project writes.
JSON_INT_LIMIT = 2 ** 63

_KINDS = ((stat.S_ISLNK, 'a symbolic link'),
          (stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
          (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def kind(mode):
    """What a file of ``st_mode`` ``mode`` is, in words (``'a FIFO'``);
    ``'a regular file'`` for one."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return 'a regular file' if stat.S_ISREG(mode) else 'not a file'


def _refuse_kind(path, mode, error):
    raise error('{} is {}, not a regular file; give a file.'.format(
        path, kind(mode)))


def _cannot(path, e, error):
    if isinstance(e, FileNotFoundError):
        return error('{} does not exist.'.format(path))
    return error('cannot read {}: {}.'.format(path, e.strerror or e))


def open_regular(path, error, follow=True):
    """``path`` opened for reading in binary, if it is a regular file; the
    caller closes it.

    The kind is checked before the file is opened (opening a device can
    act on it) and again on the opened descriptor, which is opened
    without waiting (a FIFO put in its place meanwhile would block).

    Args:
        path (str): The file.
        error (type): The :mod:`errors` class to raise.
        follow (bool): Whether a symbolic link at ``path`` is followed to
            the file it names, or refused as not a regular file.

    Raises:
        error: ``path`` does not exist, cannot be read, or is not a regular
            file (a directory, a FIFO, a device, a socket, a link where
            ``follow`` is false); one line that says which.
    """
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
        if not stat.S_ISREG(mode):
            _refuse_kind(path, mode, error)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC |
                     getattr(os, 'O_NOCTTY', 0) |
                     (0 if follow else os.O_NOFOLLOW))
    except OSError as e:
        raise _cannot(path, e, error)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            _refuse_kind(path, mode, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, limit, error, what='file'):
    """The bytes of the regular file ``path``, refused if there are more
    than ``limit``: its size is checked before it is read, and no more
    than ``limit + 1`` bytes are read should it grow meanwhile.

    Args:
        path (str): The file.
        limit (int): The most bytes a ``what`` may hold.
        error (type): The :mod:`errors` class to raise.
        what (str): What the file is, for the message.

    Raises:
        error: As :func:`open_regular`, or the file holds more than
            ``limit`` bytes.
    """
    with open_regular(path, error) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b''
        except OSError as e:
            raise _cannot(path, e, error)
    if size > limit or len(data) > limit:
        raise error('{} is {} bytes, more than a {} may hold ({}); it was '
                    'not read.'.format(path, max(size, len(data)), what,
                                       limit))
    return data


def json_depth(data):
    """The deepest nesting of arrays and objects in the JSON text
    ``data`` (bytes), strings left out; found without parsing."""
    outside = numpy.frombuffer(_JSON_STRING.sub(b'""', data), numpy.uint8)
    steps = (numpy.isin(outside, numpy.frombuffer(b'[{', numpy.uint8))
             .astype(numpy.int64) -
             numpy.isin(outside, numpy.frombuffer(b']}', numpy.uint8)))
    return int(numpy.cumsum(steps).max(initial=0))


def _int64(text):
    value = int(text)
    if not -JSON_INT_LIMIT <= value < JSON_INT_LIMIT:
        raise ValueError('it holds an integer of {} digits, beyond 64 '
                         'bits'.format(len(text.lstrip('-'))))
    return value


def parse_json(data, path, error, what='file'):
    """The JSON value in the bytes ``data`` read from ``path``.

    Raises:
        error: The bytes are not UTF-8, not JSON, nested deeper than
            :data:`MAX_JSON_DEPTH`, or hold an integer beyond 64 bits
            (:data:`JSON_INT_LIMIT`); one line naming ``path``.
    """
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise error('{} is not a {}: its JSON nests {} deep (at most {}).'
                    .format(path, what, depth, MAX_JSON_DEPTH))
    try:
        return json.loads(data.decode('utf-8'), parse_int=_int64)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError too
        raise error('{} is not a {}: {}.'.format(
            path, what, ' '.join(str(e).split())))


def read_json(path, limit, error, what='file'):
    """The JSON value in the regular file ``path`` of at most ``limit``
    bytes (:func:`read_bytes`, :func:`parse_json`)."""
    return parse_json(read_bytes(path, limit, error, what), path, error,
                      what)
