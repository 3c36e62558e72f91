"""Snapshots: the whole trainer written to ``snapshot_iter_N``, random
state included, and loaded back for ``--resume``, checked.

:class:`Snapshot` and :class:`RandomState` together make ``--resume`` exact:
the snapshot holds the generator's state as well as the model, the
optimizer and the iterator, so a run resumed from it draws the same
shuffles, dropout masks and stochastic quantizations as the run that was
interrupted (on a GPU, cuDNN's dropout generator is the exception). It
holds its run's record too (:mod:`run_record`).

A snapshot is a file anyone may have written: :func:`load_snapshot`
refuses in one line a value no run writes (:func:`check_state`, to which
each extension contributes its ``check_state``), and nothing read from a
snapshot is used as a path.
"""
import json
import math
import numbers
import os
import re

import numpy

import chainer
from chainer import training
from chainer.backends import cuda
from chainer.training import extensions

from quantized_net.atomic_file import atomic_write
from quantized_net.training import result_dir
from quantized_net.training import run_record
from quantized_net.training import safe_npz
from quantized_net import errors
from quantized_net import untrusted_file

#: Where a snapshot records the number of processes that wrote it.
PROCESSES_KEY = 'processes'
#: The most snapshot names a snapshot's list of those its run wrote may
#: hold: a run keeps one, and lists one more while it writes the next.
MAX_WRITTEN = 64
_SNAPSHOT_NAME = re.compile(re.escape(result_dir.SNAPSHOT_PREFIX) +
                            '(0|[1-9][0-9]{0,18})', re.ASCII)
#: NumPy's MT19937 state: its key's length, and the last position in it.
MT_KEY_LENGTH = 624
#: Iterations, epochs and Adam's steps are below this: far beyond any run,
#: and far enough below 2**63 that counting on never leaves int64 (NumPy
#: would then save the count as a pickled object).
COUNT_LIMIT = 2 ** 62
#: What a count must be, in words.
COUNT = 'an integer in [0, 2**62)'


class Tampered(ValueError):
    """A value in a snapshot that no run writes; the message names its
    member."""


def require(condition, key, wanted):
    """Raises :class:`Tampered` unless ``condition``: the value of member
    ``key`` is not ``wanted`` (what it must be, in words)."""
    if not condition:
        raise Tampered('{} is not {}'.format(key, wanted))


def is_count(value):
    """Whether ``value`` is an integer, not a bool, in ``[0,
    COUNT_LIMIT)``: a count a run can reach, which stays an int64 as it
    grows."""
    return isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, numpy.bool_)) and 0 <= value < COUNT_LIMIT


def is_number(value):
    """Whether ``value`` is a real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(
        value, (bool, numpy.bool_))


def is_finite(value):
    """Whether ``value`` is a finite real number (not a bool)."""
    return is_number(value) and math.isfinite(value)


def is_snapshot_name(name):
    """Whether ``name`` is one :func:`result_dir.snapshot_name` gives: no
    separator, no ``..``, nothing but the prefix and the iteration."""
    return isinstance(name, str) and bool(_SNAPSHOT_NAME.fullmatch(name))


def key_of(serializer, name):
    """The member that ``serializer`` reads ``name`` from, for messages."""
    return getattr(serializer, 'path', '') + name


def text(value, key):
    """The string a serializer read from member ``key``; Tampered unless
    the member is one string."""
    require(isinstance(value, numpy.ndarray) and value.shape == () and
            value.dtype.kind == 'U', key, 'a string')
    return str(value)


def json_value(value, key, what):
    """The JSON value of the string a serializer read from member
    ``key``, of bounded nesting; Tampered unless it is one."""
    return untrusted_file.parse_json(text(value, key).encode('utf-8'), key,
                                     Tampered, what)


def saving(serializer):
    """Whether ``serializer`` writes (rather than reads) a snapshot."""
    return isinstance(serializer, chainer.serializer.Serializer)


class Snapshot(training.Extension):
    """Writes the whole trainer and its run's record to ``snapshot_iter_N``
    in the run's directory, durably and whole or not at all, and removes
    the older snapshots this run wrote, keeping the latest ``n_retains``.
    Which snapshots the run wrote is part of the snapshot, so a resumed
    run prunes them too; a file is removed only if it is a regular file in
    the run's own directory whose record names the run's id (see
    :mod:`run_record`), and nothing else is ever removed. It runs after
    every other extension, as Chainer's snapshot does, so that the state
    it saves is the state the iteration ended with (the log entry
    written).

    Args:
        n_retains (int): How many of the latest snapshots to keep.
        record (run_record.Record): The record of the run; without one, a
            snapshot records none and no snapshot is ever removed.
    """

    priority = -100

    def __init__(self, n_retains=1, record=None):
        self.n_retains = n_retains
        self.record = record
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
            if self.record is not None:
                arrays.update(run_record.to_arrays(self.record))
            with atomic_write(os.path.join(trainer.out, name), 'wb') as f:
                numpy.savez_compressed(f, **arrays)
            for old in self.written[:-self.n_retains]:
                self.remove(trainer.out, old)
        del self.written[:-self.n_retains]

    def remove(self, out, name):
        """Removes the snapshot ``name`` from ``out`` if this run wrote it
        there (see the class's description)."""
        if self.record is None or not is_snapshot_name(name):
            return
        path = os.path.join(out, name)
        ours = run_record.written_by(path, self.record.run_id)
        try:
            if ours is not None and os.path.samestat(os.lstat(path), ours):
                os.remove(path)
        except FileNotFoundError:  # removed meanwhile
            pass
        except OSError as e:
            raise errors.ResultError(errors.os_error(e, 'remove'))

    def serialize(self, serializer):
        if saving(serializer):
            serializer('written', json.dumps(self.written))
            return
        key = key_of(serializer, 'written')
        written = json_value(serializer('written', None), key,
                             'list of snapshot names')
        require(isinstance(written, list) and len(written) <= MAX_WRITTEN
                and all(is_snapshot_name(name) for name in written), key,
                'a list of at most {} snapshot names ({}N)'.format(
                    MAX_WRITTEN, result_dir.SNAPSHOT_PREFIX))
        self.written = written


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
        keys = serializer('keys', None)
        require(isinstance(keys, numpy.ndarray) and
                keys.shape == (MT_KEY_LENGTH,) and keys.dtype == numpy.uint32,
                key_of(serializer, 'keys'),
                "an MT19937 key (uint32 of shape ({},))".format(
                    MT_KEY_LENGTH))
        pos = serializer('pos', 0)
        require(is_count(pos) and pos <= MT_KEY_LENGTH,
                key_of(serializer, 'pos'),
                'a position from 0 to {}'.format(MT_KEY_LENGTH))
        has_gauss = serializer('has_gauss', 0)
        require(has_gauss in (0, 1), key_of(serializer, 'has_gauss'),
                '0 or 1')
        cached = serializer('cached_gaussian', 0.0)
        require(is_finite(cached), key_of(serializer, 'cached_gaussian'),
                'a finite number')
        gpu_seed = serializer('gpu_seed', -1)
        require(isinstance(gpu_seed, int) and -1 <= gpu_seed < 2 ** 31,
                key_of(serializer, 'gpu_seed'),
                'a seed from -1 (none) to 2**31 - 1')
        numpy.random.set_state(('MT19937', keys, pos, has_gauss, cached))
        self.gpu_seed = gpu_seed
        if self.on_gpu and self.gpu_seed >= 0:
            cuda.cupy.random.seed(self.gpu_seed)


def _optional(key):
    # Plots are optional (--noplot, matplotlib missing): a run resumed
    # with or without them is the same run. Snapshots older than BestModel
    # lack its best accuracy: it counts from the resumed epoch on.
    return 'PlotReport' in key or 'BestModel' in key


def _check_iterator(iterator, prefix):
    state = getattr(iterator, '_state', None)  # SerialIterator's
    if state is None:
        return
    size = len(iterator.dataset)
    require(is_count(state.current_position) and
            state.current_position < size, prefix + 'current_position',
            'a position in [0, {})'.format(size))
    require(is_count(state.epoch), prefix + 'epoch',
            COUNT)
    require(isinstance(state.is_new_epoch, bool), prefix + 'is_new_epoch',
            'true or false')
    order = state.order
    require(order is None or (
        isinstance(order, numpy.ndarray) and order.shape == (size,) and
        order.dtype.kind in 'iu' and numpy.array_equal(
            numpy.sort(order), numpy.arange(size))), prefix + 'order',
        'a permutation of range({})'.format(size))
    require(is_finite(iterator._previous_epoch_detail),
            prefix + 'previous_epoch_detail', 'a finite number')


def _check_optimizer(optimizer, prefix):
    require(is_count(optimizer.t), prefix + 't', COUNT)
    require(is_count(optimizer.epoch), prefix + 'epoch',
            COUNT)
    for name, param in optimizer.target.namedparams():
        rule = param.update_rule
        if rule is None:
            continue
        key = prefix + name.lstrip('/') + '/'
        require(is_count(rule.t), key + 't', COUNT)
        for state, value in (rule.state or {}).items():
            require(value is not None and value.shape == param.shape and
                    value.dtype == param.dtype, key + state,
                    'an array of shape {} and {}'.format(param.shape,
                                                         param.dtype))


def check_trigger(trigger, prefix):
    """Raises :class:`Tampered` unless the interval ``trigger`` (others
    keep no state) holds the iteration and epoch it last saw, or -1 for
    none."""
    if not isinstance(trigger, training.triggers.IntervalTrigger):
        return
    iteration = trigger._previous_iteration
    require(isinstance(iteration, int) and iteration >= -1,
            prefix + 'previous_iteration', 'an iteration, or -1')
    detail = trigger._previous_epoch_detail
    require(is_finite(detail) and detail >= -1,
            prefix + 'previous_epoch_detail', 'a number of epochs, or -1')


def check_state(trainer):
    """Raises :class:`Tampered` unless the state loaded into ``trainer`` is
    one a run can reach: the updater's, its iterators' and optimizers',
    the triggers', and each extension's, which an extension checks in its
    own ``check_state(prefix)`` where it has one.

    What Chainer's deserializers check (the shapes of the parameters, the
    keys) is not repeated; what would fail later, in the middle of
    training, is checked here, so that it fails at once, in one line.
    """
    updater = trainer.updater
    require(is_count(updater.iteration), 'updater/iteration',
            COUNT)
    _check_iterator(updater.get_iterator('main'), 'updater/iterator:main/')
    for name, optimizer in updater.get_all_optimizers().items():
        _check_optimizer(optimizer, 'updater/optimizer:{}/'.format(name))
    elapsed = getattr(trainer, '_snapshot_elapsed_time', 0.0)
    require(is_finite(elapsed) and elapsed >= 0, '_snapshot_elapsed_time',
            'a finite number of seconds')
    check_trigger(trainer.stop_trigger, 'stop_trigger/')
    # Trainer keeps its extensions by name only in this attribute.
    for name, entry in trainer._extensions.items():
        check_trigger(entry.trigger, 'extension_triggers/{}/'.format(name))
        prefix = 'extensions/{}/'.format(name)
        extension = entry.extension
        check = getattr(extension, 'check_state', None)
        if check is not None:
            check(prefix)
        elif isinstance(extension, extensions.ExponentialShift):
            require(is_count(extension._t), prefix + '_t',
                    COUNT)
            value = extension._last_value
            require(value is None or (is_finite(value) and value > 0),
                    prefix + '_last_value', 'a finite positive number')


def load_snapshot(path, trainer, arrays=None, processes=1):
    """Loads the snapshot ``path`` (or its ``arrays``, already read) into
    the ``trainer`` of a run of ``processes`` processes, never
    unpickling, and checks what it loaded (:func:`check_state`).

    Raises:
        errors.UsageError: It cannot be read, was written by another number
            of processes, is not a snapshot of this trainer, or holds a
            value no run writes; one line.
    """
    try:
        if arrays is None:
            arrays = safe_npz.read_npz(path)
        written = arrays.get(PROCESSES_KEY, numpy.array(1))
        require(written.shape == () and written.dtype.kind in 'iu' and
                1 <= int(written) <= 2 ** 20, PROCESSES_KEY,
                'a number of processes')
        written = int(written)
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
    except Tampered as e:
        raise run_record.altered(path, e)
    except Exception as e:  # a key or shape error: not our snapshot
        raise errors.UsageError(
            'cannot resume from {}: it is not a snapshot of this network '
            '({}: {}). Give a snapshot_iter_* file written with the same '
            'preset, --unit and --layers.'.format(
                path, type(e).__name__, ' '.join(str(e).split())))
    if isinstance(trainer, training.Trainer):
        try:
            check_state(trainer)
        except Tampered as e:
            raise run_record.altered(path, e)
