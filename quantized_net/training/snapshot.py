"""Snapshots: the whole trainer written to ``snapshot_iter_N``, random
state included, and loaded back for ``--resume``.

:class:`Snapshot` and :class:`RandomState` together make ``--resume`` exact:
the snapshot holds the generator's state as well as the model, the
optimizer and the iterator, so a run resumed from it draws the same
shuffles, dropout masks and stochastic quantizations as the run that was
interrupted (on a GPU, cuDNN's dropout generator is the exception).
"""
import json
import os

import numpy

import chainer
from chainer import training
from chainer.backends import cuda

from quantized_net.atomic_file import atomic_write
from quantized_net.training import result_dir
from quantized_net.training import safe_npz
from quantized_net import errors

#: Where a snapshot records the number of processes that wrote it.
PROCESSES_KEY = 'processes'


def saving(serializer):
    """Whether ``serializer`` writes (rather than reads) a snapshot."""
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
        if saving(serializer):
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
        if saving(serializer):
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


def _optional(key):
    # Plots are optional (--noplot, matplotlib missing): a run resumed
    # with or without them is the same run. Snapshots older than BestModel
    # lack its best accuracy: it counts from the resumed epoch on.
    return 'PlotReport' in key or 'BestModel' in key


def load_snapshot(path, trainer, arrays=None, processes=1):
    """Loads the snapshot ``path`` (or its ``arrays``, already read) into
    the ``trainer`` of a run of ``processes`` processes, never
    unpickling.

    Raises:
        errors.UsageError: It cannot be read, was written by another number
            of processes, or is not a snapshot of this trainer; one line.
    """
    try:
        if arrays is None:
            arrays = safe_npz.read_npz(path)
        written = int(arrays.get(PROCESSES_KEY, 1))
        if written != processes:
            raise errors.UsageError(
                'cannot resume: {} was written by {} process{}; run it with '
                '{}.'.format(path, written, 'es' if written > 1 else '',
                             'mpiexec -n {} ./train_mnist_mn.py'.format(
                                 written) if written > 1 else
                             './train_mnist.py'))
        safe_npz.deserialize(arrays, trainer, optional=_optional)
    except errors.ResultError as e:
        raise errors.UsageError('cannot resume: {}'.format(e))
    except errors.UsageError:
        raise
    except Exception as e:  # a key or shape error: not our snapshot
        raise errors.UsageError(
            'cannot resume from {}: it is not a snapshot of this network '
            '({}: {}). Give a snapshot_iter_* file written with the same '
            'preset, --unit and --layers.'.format(
                path, type(e).__name__, ' '.join(str(e).split())))
