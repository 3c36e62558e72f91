"""The result a run reports, from its log: one definition for every
command that reports one (``sweep.py``, ``evaluate.py``, ``plot_error.py``).

A run that holds out validation images (``--validation N``, the ``bnn``
preset) logs the test set apart, as ``test``; it reports the test error of
its best validation epoch (the first of equals), the model
``model_best.npz`` holds: chosen by validation, never by test, error. A run
without (the original's way) evaluates the test set as ``validation``;
choosing its best epoch would choose by test error, so it reports its last
epoch, the model ``model.npz`` holds.
"""
import dataclasses
import math
from typing import Optional

#: Log keys of the three errors, by the name the reports give them.
ACCURACY_KEYS = (('training', 'main/accuracy'),
                 ('validation', 'validation/main/accuracy'),
                 ('test', 'test/main/accuracy'))
_KEY = dict(ACCURACY_KEYS)
BEST_VALIDATION = 'best validation'
LAST = 'last'


def number(value):
    """``value`` if it is a finite number (not true or false), else None:
    a log is read as anyone may have written it."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:  # an integer beyond any float
        return None


def is_epoch(value):
    """Whether ``value`` is an epoch: a positive integer."""
    return type(value) is int and value > 0


def error(entry, name):
    """The error in % of log ``entry`` for ``name`` (training, validation
    or test); None where the entry has no accuracy in [0, 1] for it."""
    accuracy = number(entry.get(_KEY[name]))
    if accuracy is None or not 0 <= accuracy <= 1:
        return None
    return 100 * (1 - accuracy)


def _entries(log, name):
    """The entries of ``log`` with an epoch and an error for ``name``."""
    return [entry for entry in log if isinstance(entry, dict) and
            is_epoch(entry.get('epoch')) and error(entry, name) is not None]


def holds_out(log):
    """Whether the run of ``log`` held out validation images: whether it
    logged a test error apart."""
    return bool(_entries(log, 'test'))


def best_validation(log):
    """The log entry of the epoch with the lowest validation error (the
    first of equals), the epoch ``model_best.npz`` holds; None where no
    entry has a validation error."""
    entries = _entries(log, 'validation')
    if not entries:
        return None
    # max returns the first of equals.
    return max(entries, key=lambda entry: entry[_KEY['validation']])


def last(log):
    """The last log entry with a validation error, the epoch
    ``model.npz`` holds; None where none has one."""
    entries = _entries(log, 'validation')
    return entries[-1] if entries else None


def describe_epoch(epoch, chosen_by):
    """``'epoch 3 (best validation)'``, ``'epoch 5 (last)'``: the words
    every report gives its epoch."""
    return 'epoch {} ({})'.format(epoch, chosen_by)


@dataclasses.dataclass(frozen=True)
class Reported(object):
    """The result a run reports.

    Attributes:
        epoch (int): The epoch reported.
        chosen_by (str): Why that one: :data:`BEST_VALIDATION` or
            :data:`LAST`.
        test_error (float): Its test error in %, None where not logged.
        validation_error (float): Its validation error in %, where the run
            held out validation images; else None.
        train_loss (float): Its training loss, None where not logged.
    """

    epoch: int
    chosen_by: str
    test_error: Optional[float]
    validation_error: Optional[float]
    train_loss: Optional[float]

    def __str__(self):
        return describe_epoch(self.epoch, self.chosen_by)

    def summary(self):
        """``'test error 1.36% at epoch 145 (best validation); validation
        error there 1.26%'``."""
        test = ('not logged' if self.test_error is None else
                '{:.2f}%'.format(self.test_error))
        line = 'test error {} at {}'.format(test, self)
        if self.validation_error is not None:
            line += '; validation error there {:.2f}%'.format(
                self.validation_error)
        return line


def reported(log):
    """The :class:`Reported` result of the run of ``log`` (see the
    module's description); None where the log has no validation error."""
    if holds_out(log):
        entry, chosen_by = best_validation(log), BEST_VALIDATION
    else:
        entry, chosen_by = last(log), LAST
    if entry is None:
        return None
    if chosen_by == BEST_VALIDATION:
        test, validation = error(entry, 'test'), error(entry, 'validation')
    else:  # the test set, evaluated as "validation"
        test, validation = error(entry, 'validation'), None
    return Reported(entry['epoch'], chosen_by, test, validation,
                    number(entry.get('main/loss')))


def model_epoch(log, best):
    """The words for the epoch of a result's model: that of the best
    validation (``best``, the model of ``model_best.npz``) or the last
    (``model.npz``); None where the log does not say."""
    entry = best_validation(log) if best else last(log)
    if entry is None:
        return None
    return describe_epoch(entry['epoch'], BEST_VALIDATION if best else LAST)
