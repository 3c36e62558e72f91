"""Ctrl-C (SIGINT) and SIGTERM: one line and the status a shell reports
for the signal, from a command's first instruction to its last, and
never between creating a file and taking charge of removing it.

A command's process goes through three stages:

* importing (:func:`install_early`, which the package runs first of all
  when a command is the main program): nothing has been written yet, so
  a signal ends the process at once, with its line;
* running (:func:`install_raising`, from :func:`cli.run`): a signal is
  raised as an exception (:class:`KeyboardInterrupt`, :class:`Terminated`)
  where the program is, so that every ``finally`` runs (temporary files
  removed, locks released); the signals that follow it are ignored, so
  that a second Ctrl-C cannot cut that cleaning short;
* creating a file it must remove when interrupted (:func:`deferred`):
  signals wait until the file is in the hands of the code that removes
  it;
* ending (:func:`ignore`, from :func:`cli.run` once the command's work
  has ended, however it ended): its one line is being written, and a
  signal then changes nothing.
"""
import contextlib
import os
import signal
import sys
import time

#: signal -> (what the line says, exit status), as a shell reports it.
ENDINGS = {signal.SIGINT: ('interrupted', 128 + signal.SIGINT),
           signal.SIGTERM: ('terminated', 128 + signal.SIGTERM)}
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: How many :func:`deferred` blocks are open, and the signal that arrived
#: in one, to act on when the outermost ends.
_deferring = [0, None]


class Terminated(BaseException):
    """SIGTERM, raised where the program is, as Python raises
    :class:`KeyboardInterrupt` for SIGINT."""


def prog():
    """The name of the running command, as its messages begin."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] \
        else 'python'


def ending(error):
    """``(what, status)`` for the exception a signal raised."""
    return ENDINGS[signal.SIGINT if isinstance(error, KeyboardInterrupt)
                   else signal.SIGTERM]


#: How long a process of an MPI job other than the first waits, on a
#: signal, before it says so itself: mpiexec passes Ctrl-C on to every
#: process, and the first one's line then ends the job meanwhile.
RANK_GRACE_SECONDS = 3.0


def mpi_rank():
    """This process's rank in an MPI job, as mpiexec tells it (MPICH's and
    Open MPI's variables); 0 outside one."""
    rank = os.environ.get('PMI_RANK') or os.environ.get(
        'OMPI_COMM_WORLD_RANK')
    return int(rank) if rank and rank.isdigit() else 0


def line(what, rank=0):
    """The line a command ends with on a signal: ``PROG: interrupted``,
    ``PROG: terminated (process 1)`` from a rank but the first."""
    return '{}: {}{}'.format(prog(), what,
                             ' (process {})'.format(rank) if rank else '')


def _exit_at_once(signum, frame):
    what, status = ENDINGS[signum]
    rank = mpi_rank()
    if rank:
        for other in ENDINGS:
            signal.signal(other, signal.SIG_IGN)
        time.sleep(RANK_GRACE_SECONDS)
    os.write(2, (line(what, rank) + '\n').encode())
    os._exit(status)


def running_a_command():
    """Whether the main program is one of the project's commands."""
    main = getattr(sys.modules.get('__main__'), '__file__', None)
    return bool(main) and os.path.dirname(os.path.abspath(main)) == _ROOT


def install_early():
    """Ends the process at once, with its line, on SIGINT or SIGTERM,
    where the main program is one of the project's commands (elsewhere,
    in a test run say, it changes nothing)."""
    if running_a_command():
        for signum in ENDINGS:
            signal.signal(signum, _exit_at_once)


def _raise(signum, frame):
    for other in ENDINGS:
        signal.signal(other, signal.SIG_IGN)
    if _deferring[0]:
        # Another thread took the signal while this one holds it back.
        _deferring[1] = signum
        return
    _raise_for(signum)


def _raise_for(signum):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt()
    raise Terminated()


def install_raising():
    """Raises :class:`KeyboardInterrupt` on SIGINT and :class:`Terminated`
    on SIGTERM, once: every later signal is ignored."""
    _deferring[1] = None
    for signum in ENDINGS:
        signal.signal(signum, _raise)


def ignore():
    """Ignores SIGINT and SIGTERM from now on: a command that is ending
    (its line being written) is not cut short. (SIG_IGN itself, not a
    handler that does nothing: Python puts back the default action of a
    signal with a handler of its own as it shuts down, when a signal would
    still kill the process.)"""
    for signum in ENDINGS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def deferred():
    """Holds SIGINT and SIGTERM back for the ``with`` block; one that
    arrived meanwhile is acted on when the block ends (by the outermost
    block, where they nest).

    Blocking the signals covers this thread; a signal that another thread
    takes (BLAS's, numba's) is held back by :func:`install_raising`'s
    handler, which runs in this one.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, set(ENDINGS))
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if not _deferring[0] and _deferring[1] is not None:
            signum, _deferring[1] = _deferring[1], None
            _raise_for(signum)
