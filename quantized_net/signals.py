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
  it.
"""
import contextlib
import os
import signal
import sys

#: signal -> (what the line says, exit status), as a shell reports it.
ENDINGS = {signal.SIGINT: ('interrupted', 128 + signal.SIGINT),
           signal.SIGTERM: ('terminated', 128 + signal.SIGTERM)}
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def _exit_at_once(signum, frame):
    what, status = ENDINGS[signum]
    os.write(2, '{}: {}\n'.format(prog(), what).encode())
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


def _ignore(signum, frame):
    pass


def _raise(signum, frame):
    for other in ENDINGS:
        signal.signal(other, _ignore)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt()
    raise Terminated()


def install_raising():
    """Raises :class:`KeyboardInterrupt` on SIGINT and :class:`Terminated`
    on SIGTERM, once: every later signal is ignored."""
    for signum in ENDINGS:
        signal.signal(signum, _raise)


@contextlib.contextmanager
def deferred():
    """Holds SIGINT and SIGTERM back for the ``with`` block; one that
    arrived meanwhile is acted on when the block ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, set(ENDINGS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
