"""Trainer extensions that report a run and keep its results safe; the
snapshot's are :mod:`snapshot`'s.

:class:`LogReport` and :class:`PlotReport` write their files whole or not
at all; :class:`BestModel` keeps the model of the best validation epoch;
:class:`StopOnNonFiniteLoss` ends a run whose loss has become NaN or
infinite before it overwrites the last good snapshot. Each extension that
keeps state in a snapshot checks what a resume loaded into it
(``check_state``, see :func:`snapshot.check_state`).
"""
import json
import math
import os

import numpy

from chainer import training
from chainer.training import extensions

from quantized_net.atomic_file import (TEMP_SUFFIX, atomic_write,
                                       fsync_directory, remove_temporary,
                                       temp_prefix)
from quantized_net.training import result_dir
from quantized_net.training import saved_model
from quantized_net.training import snapshot
from quantized_net import errors


class LogReport(extensions.LogReport):
    """Chainer's LogReport, writing ``log`` whole or not at all."""

    def __init__(self, **kwargs):
        super(LogReport, self).__init__(log_name=None, **kwargs)

    def serialize(self, serializer):
        if not snapshot.saving(serializer):
            # Chainer parses these without bounding their nesting.
            snapshot.json_value(serializer('_log', None),
                                snapshot.key_of(serializer, '_log'), 'log')
            summary = serializer['_summary']
            try:
                names = summary('_names', None)
            except KeyError:  # Chainer goes on without the statistics
                names = None
            if names is not None:
                _check_summary(summary, names)
        super(LogReport, self).serialize(serializer)

    def check_state(self, prefix):
        """Raises snapshot.Tampered unless the log loaded is a list of
        entries, each an object of numbers: what the table and the next
        entry read."""
        snapshot.require(isinstance(self.log, list) and all(
            isinstance(entry, dict) and all(
                isinstance(key, str) and snapshot.is_number(value)
                for key, value in entry.items()) for entry in self.log),
            prefix + '_log', 'a list of objects of numbers')
        snapshot.check_trigger(self._trigger, prefix + '_trigger/')

    def __call__(self, trainer):
        entries = len(self.log)
        super(LogReport, self).__call__(trainer)
        if len(self.log) > entries:
            path = os.path.join(trainer.out, result_dir.LOG_FILE)
            with atomic_write(path) as f:
                json.dump(self.log, f, indent=4)


def _check_summary(summary, names):
    """Refuses the statistics of an epoch in progress unless they are,
    for each name, the sums that Chainer's summary keeps."""
    key = snapshot.key_of(summary, '_names')
    names = snapshot.json_value(names, key, 'list of names')
    snapshot.require(isinstance(names, list) and all(
        isinstance(name, str) for name in names), key, 'a list of names')
    for index in range(len(names)):
        sums = summary['_summaries'][str(index)]
        for member in ('_x', '_x2', '_n'):
            value = sums(member, None)  # KeyError if missing: not a snapshot
            snapshot.require(
                isinstance(value, numpy.ndarray) and value.shape == () and
                value.dtype.kind in 'iuf' and bool(numpy.isfinite(value)),
                snapshot.key_of(sums, member), 'a finite number')


class PlotReport(extensions.PlotReport):
    """Chainer's PlotReport, writing its figure whole or not at all, and
    resuming from a snapshot of a run that had no plots (``--noplot``)."""

    def serialize(self, serializer):
        if snapshot.saving(serializer):
            return super(PlotReport, self).serialize(serializer)
        name = '_plot_{}'.format(self._file_name)
        data = serializer(name, None)
        if data is not None:  # None: the run had no plots
            self._data = snapshot.json_value(
                data, snapshot.key_of(serializer, name), 'plot')

    def check_state(self, prefix):
        """Raises snapshot.Tampered unless the data loaded holds, for each
        value plotted, a list of ``[x, y]`` pairs of numbers."""
        data = self._data
        snapshot.require(isinstance(data, dict) and all(
            isinstance(data.get(key), list) and all(
                isinstance(point, list) and len(point) == 2 and
                all(snapshot.is_number(v) for v in point)
                for point in data[key]) for key in self._y_keys),
            prefix + '_plot_{}'.format(self._file_name),
            'an object of lists of [x, y] pairs for {}'.format(
                ', '.join(self._y_keys)))

    def __call__(self, trainer):
        name = self._file_name
        # matplotlib takes the format from the last suffix.
        self._file_name = temp_prefix(name) + TEMP_SUFFIX + '.png'
        temp = os.path.join(trainer.out, self._file_name)
        try:
            super(PlotReport, self).__call__(trainer)
            if os.path.exists(temp):
                with open(temp, 'rb') as f:
                    os.fsync(f.fileno())
                os.replace(temp, os.path.join(trainer.out, name))
                fsync_directory(trainer.out)
        finally:
            self._file_name = name
            remove_temporary(temp)  # interrupted: the old figure stays


class BestModel(training.Extension):
    """Writes the model to ``model_best.npz`` after each epoch whose
    validation accuracy beats every earlier one (the first of equals), so
    that the model reported is chosen by validation, never by test, error.
    The best accuracy so far is part of the snapshot."""

    trigger = (1, 'epoch')
    # After the evaluator has reported the epoch's accuracy.
    priority = training.PRIORITY_READER

    def __init__(self, model, key='validation/main/accuracy'):
        self.model = model
        self.key = key
        self.best = -math.inf

    def __call__(self, trainer):
        value = float(trainer.observation[self.key])
        if value > self.best:
            self.best = value
            saved_model.save_model(self.model, trainer.out,
                                   result_dir.BEST_MODEL_FILE)

    def serialize(self, serializer):
        self.best = float(serializer('best', self.best))

    def check_state(self, prefix):
        """Raises snapshot.Tampered unless the best accuracy loaded is one
        (or none yet, minus infinity)."""
        snapshot.require(self.best == -math.inf or 0 <= self.best <= 1,
                         prefix + 'best', 'an accuracy in [0, 1]')


class StopOnNonFiniteLoss(training.Extension):
    """Ends training with :class:`errors.NonFiniteLoss` at the first iteration
    whose loss is not finite; it runs before the snapshot, so the last
    snapshot stays the last good one."""

    trigger = 1, 'iteration'
    priority = training.PRIORITY_WRITER + 2

    def __call__(self, trainer):
        loss = trainer.observation.get('main/loss')
        if loss is None:
            return
        value = float(getattr(loss, 'array', loss))
        if math.isfinite(value):
            return
        latest = result_dir.snapshots(trainer.out)
        raise errors.NonFiniteLoss(
            'the training loss is {} at iteration {}; training stopped. '
            '{}Try a smaller --lr.'.format(
                value, trainer.updater.iteration,
                'The last good snapshot is {}. '.format(os.path.join(
                    trainer.out, latest[-1][1])) if latest else ''))
