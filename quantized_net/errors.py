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
