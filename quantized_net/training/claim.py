"""Holding a result directory: one run at a time, and never over another
run's files.

One run at a time holds a directory (:class:`DirectoryLock`); a new run
does not start in a directory that holds another run's files unless told
to replace them, and then removes only what a run writes (:func:`claim`;
the names are :mod:`result_dir`'s). Nothing a file in the directory says
is taken as a name to remove: what a run removes follows from the
directory's listing and the run's own naming rules, and is a regular file
(a link, for ``--replace``), never a directory's contents.
"""
import contextlib
import errno
import fcntl
import os
import stat

from quantized_net.training import result_dir
from quantized_net import errors
from quantized_net import signals
from quantized_net import untrusted_file

# The lock is created, never reached through a link, and opening it does
# not wait (on a FIFO put there) or make it a terminal.
_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK |
               os.O_CLOEXEC | getattr(os, 'O_NOCTTY', 0))


def _fail(path, e, doing):
    raise errors.ResultError('cannot {} {}: {}.'.format(
        doing, path, e.strerror or e))


def _not_ours(path, what):
    raise errors.ResultError(
        '{} is {}, not a lock a run made; it was left as it is. Remove it, '
        'or choose another directory.'.format(path, what))


class DirectoryLock(object):
    """An exclusive lock on a directory, held from :meth:`acquire` to
    :meth:`release` or the end of the process: the kernel releases it when
    the process dies, even by SIGKILL. The lock file holds the holder's
    process id, for the message another run gets.

    A lock file that a killed process left (kill -9, an MPI rank the job
    aborted) is stale: nobody holds its lock, so the next run takes it
    over. The file is created anew or opened without following a link,
    and used only if it is a regular file of one name: a link, a hard
    link to another file, a FIFO or a device there is refused, and never
    written. On release the file is removed only if it is still the one
    this process locked.
    """

    def __init__(self, directory):
        self.path = os.path.join(directory, result_dir.LOCK_FILE)
        self.fd = None

    def _open(self):
        """The lock file opened, checked to be one a run may write."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as e:
            _fail(self.path, e, 'use')
        if mode is not None and stat.S_ISLNK(mode):
            _not_ours(self.path, 'a symbolic link')
        if mode is not None and not stat.S_ISREG(mode):
            _not_ours(self.path, untrusted_file.kind(mode))
        try:
            fd = os.open(self.path, _LOCK_FLAGS, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:  # a link put there meanwhile
                _not_ours(self.path, 'a symbolic link')
            _fail(os.path.dirname(self.path), e, 'write to')
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                _not_ours(self.path, untrusted_file.kind(status.st_mode))
            if status.st_nlink != 1:
                _not_ours(self.path, 'a file of {} names (a hard link)'
                          .format(status.st_nlink))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _is_ours(self, fd):
        """Whether the file at the lock's name is the one ``fd`` holds."""
        try:
            return os.path.samestat(os.fstat(fd), os.lstat(self.path))
        except FileNotFoundError:
            return False

    def acquire(self):
        """Takes the lock (over a stale one a killed process left).

        Raises:
            errors.ResultError: Another process holds it, the lock's name
                is taken by something else than a lock file (a link, a
                directory, a hard link), or the lock cannot be written (a
                full disk): one line.
        """
        while True:
            # Signals wait until the file is in self.fd, which release()
            # removes.
            with signals.deferred():
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    try:
                        holder = os.read(fd, 32).decode(
                            errors='replace').strip()
                    except OSError:
                        holder = ''
                    os.close(fd)
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        _fail(self.path, e, 'lock')
                    raise errors.ResultError(
                        '{} is in use by another run (process {}); wait for '
                        'it to end, or choose another directory.'.format(
                            os.path.dirname(self.path),
                            holder if holder.isdigit() else 'unknown'))
                # A holder that released the lock removed the file it
                # locked; ours must be the file that is there now.
                if not self._is_ours(fd):
                    os.close(fd)
                    continue
                self.fd = fd
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, str(os.getpid()).encode())
                except OSError as e:  # a full disk, a quota
                    self.release()
                    _fail(self.path, e, 'write')
                return self

    def release(self):
        """Gives the lock up, if held, removing its file if it is still
        the one this process locked."""
        with signals.deferred():
            if self.fd is None:
                return
            try:
                if self._is_ours(self.fd):
                    os.remove(self.path)
            except OSError:
                # Removed by hand meanwhile, or not removable (an
                # append-only directory): closing releases the lock, and
                # a file left is a stale lock the next run takes over.
                pass
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def check_length(path, flag='--out', longest=result_dir.LONGEST_NAME):
    """errors.ResultError unless this system takes the names of the
    files a run writes in ``path``: each component of ``path`` no longer
    than a name may be, and ``path`` with the longest name a run writes
    there (``longest`` bytes, a temporary file's) no longer than a path
    may be."""
    full = os.path.abspath(path)
    existing = full
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    try:
        name_max = os.pathconf(existing, 'PC_NAME_MAX')
        path_max = os.pathconf(existing, 'PC_PATH_MAX')
    except (OSError, ValueError):  # the system does not say
        return
    for component in full.split(os.sep):
        if name_max and len(os.fsencode(component)) > name_max:
            raise errors.ResultError(
                '{} {} has a name of {} bytes, longer than this system '
                'allows ({}); choose a shorter name.'.format(
                    flag, path, len(os.fsencode(component)), name_max))
    need = len(os.fsencode(full)) + 1 + longest + 1  # the '/' and the NUL
    if path_max and need > path_max:
        raise errors.ResultError(
            '{} {} is too long: the files a run writes there would have '
            'paths of {} bytes, more than this system allows ({}); choose '
            'a shorter path.'.format(flag, path, need - 1, path_max - 1))


def make_directory(path, flag='--out'):
    """Creates ``path`` (and its parents) if missing.

    Raises:
        errors.ResultError: ``path`` is not a directory (a file, a FIFO,
            a device, a link to nothing: each said as such) or cannot be
            created.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        _fail(path, e, 'use')
    if mode is not None and stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise errors.ResultError(
                '{} {} is a symbolic link to {}, which does not exist; '
                'create that directory, or give another {}.'.format(
                    flag, path, os.readlink(path), flag))
        except OSError as e:  # a loop of links
            _fail(path, e, 'use')
    if mode is not None and not stat.S_ISDIR(mode):
        raise errors.ResultError('{} {} is {}, not a directory.'.format(
            flag, path, 'a file' if stat.S_ISREG(mode)
            else untrusted_file.kind(mode)))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        _fail(path, e, 'create')


def _check_continuation(out, resume):
    """Whether ``resume`` is a snapshot in ``out`` (the run continued in
    place); errors.ResultError if ``out`` holds later snapshots, which
    continuing from an earlier one would overwrite."""
    try:
        continuing = os.path.samefile(
            os.path.dirname(os.path.abspath(resume)), out)
    except OSError:
        return False
    if not continuing:
        return False
    latest = result_dir.snapshots(out)
    if latest and os.path.basename(resume) != latest[-1][1]:
        raise errors.ResultError(
            '{} holds a later snapshot than {} ({}), which continuing from '
            'it here would overwrite; resume from {}, or resume into '
            'another --out.'.format(out, resume, latest[-1][1],
                                    os.path.join(out, latest[-1][1])))
    return True


def _check_replaceable(out, names):
    """errors.ResultError, before anything is removed, if a name of a
    run's file in ``out`` is taken by something --replace must not
    remove (a directory, a FIFO, a device)."""
    for name in names:
        path = os.path.join(out, name)
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise errors.ResultError(
                '{} is {}, not a file a run wrote; --replace removes only '
                'those. Move it away, or choose another --out.'.format(
                    path, untrusted_file.kind(mode)))


@contextlib.contextmanager
def claim(out, resume=None, replace=False):
    """Holds ``out`` for this run (see :class:`DirectoryLock`) for the
    ``with`` block, made ready: created if missing, temporary files of
    killed writers removed. A directory holding another run's files is
    refused unless ``resume`` is its latest snapshot (the same run,
    continued) or ``replace`` asks to remove those files first (only
    those: nothing else is touched). A refused run removes nothing: the
    directory is checked first, and cleaned only once the run is
    accepted.

    Raises:
        errors.ResultError: ``out`` cannot be made ready, is held by
            another process, or holds another run's files.
    """
    check_length(out)
    make_directory(out)
    with DirectoryLock(out):
        try:
            found = result_dir.run_files(out)
            continuing = resume is not None and _check_continuation(
                out, resume)
            if found and not continuing:
                if not replace:
                    latest = result_dir.snapshots(out)
                    hint = ('continue it with --resume {}, '.format(
                        os.path.join(out, latest[-1][1])) if latest else '')
                    raise errors.ResultError(
                        '{} holds the results of another run ({}); {}choose '
                        'another --out, or give --replace to delete them '
                        'and start again.'.format(out, ', '.join(found),
                                                  hint))
                _check_replaceable(out, found)
            else:
                found = []
            for name in result_dir.leftovers(out) + found:
                try:
                    os.remove(os.path.join(out, name))
                except FileNotFoundError:
                    pass
        except OSError as e:
            _fail(out, e, 'clean up')
        yield
