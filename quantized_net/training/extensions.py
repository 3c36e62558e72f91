"""Trainer extensions that make a run safe to interrupt and to resume.

:class:`Snapshot` and :class:`RandomState` together make ``--resume`` exact:
the snapshot holds the generator's state as well as the model, the
optimizer and the iterator, so a run resumed from it draws the same
shuffles, dropout masks and stochastic quantizations as the run that was
interrupted (on a GPU, cuDNN's dropout generator is the exception).
:class:`LogReport` and :class:`PlotReport` write their files whole or not
at all; :class:`StopOnNonFiniteLoss` ends a run whose loss has become NaN
or infinite before it overwrites the last good snapshot.
"""
import json
import math
import os

import numpy

import chainer
from chainer import training
from chainer.backends import cuda
from chainer.training import extensions

from quantized_net.atomic_file import (TEMP_SUFFIX, atomic_write, fsync_directory,
                         temp_prefix)
from quantized_net.training import result_dir
from quantized_net import errors


def _saving(serializer):
    return isinstance(serializer, chainer.serializer.Serializer)


class Snapshot(training.Extension):
    """Writes the whole trainer to ``snapshot_iter_N`` in the run's
    directory, durably and whole or not at all, and removes the older
    snapshots this run wrote, keeping the latest ``n_retains``. Which
    snapshots the run wrote is part of the snapshot, so a resumed run
    prunes them too; nothing else is ever removed. It runs after every
    other extension, as Chainer's snapshot does, so that the state it saves
    is the state the iteration ended with (the log entry written).
    """

    priority = -100

    def __init__(self, n_retains=1):
        self.n_retains = n_retains
        self.written = []

    def arrays(self, trainer):
        """What to save, by name; None where this process writes nothing.
        """
        serializer = chainer.serializers.DictionarySerializer()
        serializer.save(trainer)
        return serializer.target

    def __call__(self, trainer):
        name = result_dir.snapshot_name(trainer.updater.iteration)
        if name not in self.written:
            self.written.append(name)
        arrays = self.arrays(trainer)
        if arrays is not None:  # None: another process writes
            with atomic_write(os.path.join(trainer.out, name), 'wb') as f:
                numpy.savez_compressed(f, **arrays)
            for old in self.written[:-self.n_retains]:
                path = os.path.join(trainer.out, old)
                if os.path.isfile(path):
                    os.remove(path)
        del self.written[:-self.n_retains]

    def serialize(self, serializer):
        if _saving(serializer):
            serializer('written', json.dumps(self.written))
        else:
            self.written = json.loads(serializer('written', '[]'))


class RandomState(training.Extension):
    """Puts NumPy's global generator (which shuffles the training set and
    draws dropout masks and stochastic quantizations on the CPU) in the
    snapshot, and restores it on resume.

    CuPy's generator cannot be saved; on a GPU this extension reseeds it
    at each snapshot with a seed drawn from NumPy's, which the snapshot
    keeps, so the resumed run reseeds it the same way. Give it the
    snapshot's trigger and a priority above :class:`Snapshot`'s.
    """

    def __init__(self, device):
        self.on_gpu = device.xp is cuda.cupy
        self.gpu_seed = -1

    def __call__(self, trainer):
        if self.on_gpu:
            self.gpu_seed = int(numpy.random.randint(2 ** 31))
            cuda.cupy.random.seed(self.gpu_seed)

    def serialize(self, serializer):
        if _saving(serializer):
            _, keys, pos, has_gauss, cached = numpy.random.get_state()
            serializer('keys', keys)
            serializer('pos', pos)
            serializer('has_gauss', has_gauss)
            serializer('cached_gaussian', cached)
            serializer('gpu_seed', self.gpu_seed)
            return
        numpy.random.set_state((
            'MT19937', serializer('keys', None),
            int(serializer('pos', 0)), int(serializer('has_gauss', 0)),
            float(serializer('cached_gaussian', 0.0))))
        self.gpu_seed = int(serializer('gpu_seed', -1))
        if self.on_gpu and self.gpu_seed >= 0:
            cuda.cupy.random.seed(self.gpu_seed)


class LogReport(extensions.LogReport):
    """Chainer's LogReport, writing ``log`` whole or not at all."""

    def __init__(self, **kwargs):
        super(LogReport, self).__init__(log_name=None, **kwargs)

    def __call__(self, trainer):
        entries = len(self.log)
        super(LogReport, self).__call__(trainer)
        if len(self.log) > entries:
            path = os.path.join(trainer.out, result_dir.LOG_FILE)
            with atomic_write(path) as f:
                json.dump(self.log, f, indent=4)


class PlotReport(extensions.PlotReport):
    """Chainer's PlotReport, writing its figure whole or not at all, and
    resuming from a snapshot of a run that had no plots (``--noplot``)."""

    def serialize(self, serializer):
        if _saving(serializer):
            return super(PlotReport, self).serialize(serializer)
        data = serializer('_plot_{}'.format(self._file_name), '')
        if data:
            self._data = json.loads(data)

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
            if os.path.exists(temp):  # interrupted: the old figure stays
                os.remove(temp)


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
            result_dir.save_model(self.model, trainer.out,
                                  result_dir.BEST_MODEL_FILE)

    def serialize(self, serializer):
        self.best = float(serializer('best', self.best))


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
