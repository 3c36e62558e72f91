"""Writing a file whole or not at all, and durably."""
import contextlib
import io
import os
import tempfile

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


@contextlib.contextmanager
def atomic_write(path, mode='w'):
    """Opens a temporary file beside ``path``; when the block ends without
    an exception, flushes it to the disk and renames it to ``path``, and
    flushes the directory; otherwise removes it. Readers see the old file
    or the new one, never a half-written one, and after a crash of the
    machine the file is the old one or the whole new one.

    Args:
        path (str): Final file name.
        mode (str): ``'w'`` (text) or ``'wb'``.
    """
    directory, name = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(name),
                                suffix=TEMP_SUFFIX)
    try:
        # mkstemp makes the file private; give it the usual permissions.
        os.chmod(temp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_directory(directory)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
