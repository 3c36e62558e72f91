"""Writing a file whole or not at all, and durably."""
import contextlib
import io
import os
import stat
import tempfile

from quantized_net import errors
from quantized_net import signals
from quantized_net import untrusted_file

#: Temporary files of :func:`atomic_write` end so.
TEMP_SUFFIX = '.part'


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_directory(directory):
    """Makes the names in ``directory`` (a rename, a removal) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_prefix(name):
    """The prefix of :func:`atomic_write`'s temporary files for ``name``."""
    return '.' + name


def longest_temp_name(name):
    """The length of the longest temporary file name :func:`atomic_write`
    gives ``name``: its prefix, :mod:`tempfile`'s random part (8
    characters), and the suffix."""
    return len(temp_prefix(name)) + 8 + len(TEMP_SUFFIX)


def write_figure(figure, path, dpi=100):
    """Renders the matplotlib ``figure`` in the format its suffix names,
    closes it, and writes it to ``path`` whole or not at all: a format
    matplotlib does not write raises ValueError before anything is
    written."""
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format=path.rsplit('.', 1)[-1], dpi=dpi)
    finally:
        plt.close(figure)
    with atomic_write(path, 'wb') as f:
        f.write(buffer.getvalue())


def remove_temporary(path):
    """Removes the temporary file ``path`` if it is there, as well as the
    directory allows: where it cannot be removed (an append-only
    directory), it stays for the next run to remove, and the error that
    stopped the write is the one reported."""
    try:
        os.remove(path)
    except OSError:
        pass


def check_replaceable(path):
    """errors.ResultError unless ``path`` is missing or a regular file
    (not a link, a FIFO, a device or a directory), which a new version
    may replace."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise errors.ResultError(errors.os_error(e, 'write'))
    if not stat.S_ISREG(mode):
        raise errors.ResultError(
            '{} is {}; it was not replaced. Remove it, or write '
            'elsewhere.'.format(path, untrusted_file.kind(mode)))


@contextlib.contextmanager
def atomic_write(path, mode='w'):
    """Opens a temporary file beside ``path``; when the block ends without
    an exception, flushes it to the disk and renames it to ``path``, and
    flushes the directory; otherwise removes it. Readers see the old file
    or the new one, never a half-written one, and after a crash of the
    machine the file is the old one or the whole new one. The temporary
    file is created anew (never through a link); ``path`` must be missing
    or a regular file (:func:`check_replaceable`), and a link there is
    never followed.

    Args:
        path (str): Final file name.
        mode (str): ``'w'`` (text) or ``'wb'``.

    Raises:
        errors.ResultError: ``path`` is not replaceable, or the file cannot
            be written (a full disk, a name too long): one line naming it.
    """
    check_replaceable(path)
    directory, name = os.path.split(os.path.abspath(path))
    temp = None
    try:
        with signals.deferred():  # the name is known before a signal acts
            fd, temp = tempfile.mkstemp(dir=directory,
                                        prefix=temp_prefix(name),
                                        suffix=TEMP_SUFFIX)
        # mkstemp makes the file private; give it the usual permissions.
        os.chmod(temp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_replaceable(path)
        os.replace(temp, path)
        fsync_directory(directory)
    except OSError as e:
        raise errors.ResultError('cannot write {}: {}.'.format(
            path, e.strerror or e))
    finally:
        with signals.deferred():  # a signal cannot leave it half done
            if temp is not None:
                remove_temporary(temp)
