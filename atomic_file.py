"""Writing a file whole or not at all."""
import contextlib
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode='w'):
    """Opens a temporary file beside ``path``; renames it to ``path`` when
    the block ends without an exception, removes it otherwise. Readers see
    the old file or the new one, never a half-written one.

    Args:
        path (str): Final file name.
        mode (str): ``'w'`` (text) or ``'wb'``.
    """
    directory, name = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix='.' + name,
                                suffix='.part')
    try:
        # mkstemp makes the file private; give it the usual permissions.
        os.chmod(temp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
