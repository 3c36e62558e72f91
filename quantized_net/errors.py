"""The errors a user can fix. Each ends a command with one line,
``PROG: error: message`` (:func:`quantized_net.cli.run`), never a
traceback: the message says what is wrong and what to do."""


class Error(Exception):
    """Something the user can fix; printed as one line."""


class UsageError(Error):
    """A flag, a file or a device the command was given that it cannot
    use."""


class ResultError(UsageError):
    """A result directory, or a file in one, that cannot be used."""


class ExportError(UsageError):
    """A trained model that cannot be packed."""


class NonFiniteLoss(UsageError):
    """The training loss became NaN or infinite."""


class DatasetError(Error):
    """A data set that cannot be read: which file, and why."""


class PackedFormatError(Error):
    """A packed file that cannot be read: which file, and why."""


def one_line(text):
    """``text`` as one printable line: a character that would break the
    line or act on a terminal (a newline or an escape sequence in a path
    someone gave) is written as its Python escape, ``\\n``, ``\\x1b``."""
    return ''.join(c if c.isprintable() else ascii(c)[1:-1]
                   for c in str(text))


def os_error(e, doing='use'):
    """The one line that says what the :class:`OSError` ``e`` is about:
    ``cannot write out/log: No space left on device``."""
    what = ' '.join(str(name) for name in (e.filename, e.filename2)
                    if name is not None)
    return 'cannot {}{}: {}.'.format(
        doing, ' ' + what if what else '', e.strerror or e)
