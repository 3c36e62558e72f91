"""Holding a result directory: one run at a time, and never over another
run's files.

One run at a time holds a directory (:class:`DirectoryLock`); a new run
does not start in a directory that holds another run's files unless told
to replace them, and then removes only what a run writes (:func:`claim`;
the names are :mod:`result_dir`'s).
"""
import contextlib
import errno
import fcntl
import os
import shutil

from quantized_net.training import result_dir
from quantized_net import errors


def _fail(path, e, doing):
    raise errors.ResultError('cannot {} {}: {}.'.format(
        doing, path, e.strerror or e))


class DirectoryLock(object):
    """An exclusive lock on a directory, held from :meth:`acquire` to
    :meth:`release` or the end of the process: the kernel releases it when
    the process dies, even by SIGKILL, so it never goes stale. The lock
    file holds the holder's process id, for the message another run gets.
    """

    def __init__(self, directory):
        self.path = os.path.join(directory, result_dir.LOCK_FILE)
        self.fd = None

    def acquire(self):
        """Takes the lock; errors.ResultError if another process holds
        it."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                _fail(os.path.dirname(self.path), e, 'write to')
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.read(fd, 32).decode(errors='replace').strip()
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    _fail(self.path, e, 'lock')
                raise errors.ResultError(
                    '{} is in use by another run (process {}); wait for it '
                    'to end, or choose another directory.'.format(
                        os.path.dirname(self.path), holder or 'unknown'))
            # A holder that released the lock removed the file it locked;
            # ours must be the file that is there now.
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self):
        """Gives the lock up, if held."""
        if self.fd is not None:
            try:
                os.remove(self.path)
            except FileNotFoundError:  # removed by hand meanwhile
                pass
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def make_directory(path, flag='--out'):
    """Creates ``path`` (and its parents) if missing; errors.ResultError if
    it is a file or cannot be created."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise errors.ResultError('{} {} is a file, not a directory.'.format(
            flag, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        _fail(path, e, 'create')


def _remove_leftovers(out):
    files, directories = result_dir.leftovers(out)
    for name in files:
        os.remove(os.path.join(out, name))
    for name in directories:
        shutil.rmtree(os.path.join(out, name))


@contextlib.contextmanager
def claim(out, resume=None, replace=False):
    """Holds ``out`` for this run (see :class:`DirectoryLock`) for the
    ``with`` block, made ready: created if missing, temporary files of
    killed writers removed. A directory holding another run's files is
    refused unless ``resume`` is one of its snapshots (the same run,
    continued) or ``replace`` asks to remove those files first (only
    those: nothing else is touched).

    Raises:
        errors.ResultError: ``out`` cannot be made ready, is held by
            another process, or holds another run's files.
    """
    make_directory(out)
    with DirectoryLock(out):
        try:
            _remove_leftovers(out)
            found = result_dir.run_files(out)
        except OSError as e:
            _fail(out, e, 'clean up')
        continuing = resume is not None and os.path.samefile(
            os.path.dirname(os.path.abspath(resume)), out)
        if found and not continuing:
            if not replace:
                latest = result_dir.snapshots(out)
                hint = ('continue it with --resume {}, '.format(
                    os.path.join(out, latest[-1][1])) if latest else '')
                raise errors.ResultError(
                    '{} holds the results of another run ({}); {}choose '
                    'another --out, or give --replace to delete them and '
                    'start again.'.format(out, ', '.join(found), hint))
            try:
                for name in found:
                    os.remove(os.path.join(out, name))
            except OSError as e:
                _fail(out, e, 'replace the earlier run in')
        yield
