"""A result directory's layout: the names of what ``train_mnist.py`` writes
to ``--out``, and its two JSON records, ``args.json`` and the log.

``args.json``
    The run's configuration (:mod:`presets`), seed and command line, and
    for a multi-process run the number of processes.
``log``
    Chainer's LogReport: one JSON entry per epoch.
``model.npz``
    The trained classifier's parameters, written when training ends.
``model_best.npz``
    Its parameters after the epoch of the best validation accuracy, in a
    run with held-out validation images (the ``bnn`` preset).
``snapshot_iter_N``
    The whole trainer after iteration ``N`` (random state included), for
    ``--resume``.
``loss.png``, ``accuracy.png``, ``cg.dot``
    Plots and the computational graph.

Who may write into a directory is :mod:`claim`'s; its ``.npz`` files are
read by :mod:`safe_npz`, its model by :mod:`saved_model`.
"""
import json
import os
import re
import stat

from quantized_net.atomic_file import (
    TEMP_SUFFIX, atomic_write, longest_temp_name, temp_prefix)
from quantized_net.packed.format import PACKED_FILE
from quantized_net import errors
from quantized_net import untrusted_file

ARGS_FILE = 'args.json'
LOG_FILE = 'log'
MODEL_FILE = 'model.npz'
BEST_MODEL_FILE = 'model_best.npz'
PLOT_FILES = {'loss': 'loss.png', 'accuracy': 'accuracy.png'}
GRAPH_FILE = 'cg.dot'
GRAPH_IMAGE = 'cg.png'  # when Graphviz is installed
LOCK_FILE = '.quantized_net.lock'
SNAPSHOT_PREFIX = 'snapshot_iter_'
_SNAPSHOT = re.compile(re.escape(SNAPSHOT_PREFIX) + r'(\d+)$')
#: What a run writes, besides its snapshots; export.py adds PACKED_FILE.
RUN_FILES = (ARGS_FILE, LOG_FILE, MODEL_FILE, BEST_MODEL_FILE, PACKED_FILE,
             GRAPH_FILE, GRAPH_IMAGE) + tuple(PLOT_FILES.values())
#: The most bytes ``args.json`` and the log may hold: what a run writes is
#: a few kilobytes, and a log some hundred bytes an epoch.
MAX_ARGS_BYTES = 1 << 20
MAX_LOG_BYTES = 64 << 20
#: The longest name a run gives a file in its directory: the temporary
#: file of a snapshot whose iteration has 20 digits (the most an int64
#: has), the lock's name being shorter.
LONGEST_NAME = max(longest_temp_name(SNAPSHOT_PREFIX + '9' * 20),
                   len(LOCK_FILE))


def snapshot_name(iteration):
    """The name of the snapshot taken after ``iteration``."""
    return '{}{}'.format(SNAPSHOT_PREFIX, iteration)


def snapshots(directory):
    """``[(iteration, name)]`` of the snapshots in ``directory``, oldest
    first."""
    found = []
    for name in os.listdir(directory):
        match = _SNAPSHOT.match(name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


def run_files(directory):
    """The names in ``directory`` that a run wrote."""
    return sorted(name for name in os.listdir(directory)
                  if name in RUN_FILES or _SNAPSHOT.match(name))


def leftovers(directory):
    """The names in ``directory`` of the temporary files that killed
    writers of a run's files left (``.NAME*.part``, see
    :mod:`atomic_file`): regular files only, never a link or a
    directory."""
    prefixes = tuple(temp_prefix(name)
                     for name in RUN_FILES + (SNAPSHOT_PREFIX,))
    found = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(TEMP_SUFFIX) and name.startswith(prefixes):
            try:
                mode = os.lstat(os.path.join(directory, name)).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISREG(mode):
                found.append(name)
    return found


def check_result(result, of='a'):
    """errors.ResultError unless ``result`` is a directory (a link to one
    is followed): what the commands that read a run's results are given.
    ``of`` qualifies the run the message asks for (``'a finished'``)."""
    try:
        mode = os.stat(result).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise errors.ResultError(errors.os_error(e, 'read'))
    if mode is None or not stat.S_ISDIR(mode):
        raise errors.ResultError(
            '{} is not a directory ({}); give the --out directory of {} '
            'train_mnist.py run.'.format(
                result, 'it does not exist' if mode is None and not
                os.path.lexists(result) else 'it is a link to nothing'
                if mode is None else 'it is ' + untrusted_file.kind(mode),
                of))


def write_args(out, config, seed, argv, processes=None):
    """Records the run's configuration, seed and command line, and for a
    multi-process run the number of processes, whole or not at all."""
    recorded = {'config': config, 'seed': seed, 'argv': list(argv)}
    if processes is not None:
        recorded['processes'] = processes
    with atomic_write(os.path.join(out, ARGS_FILE), 'w') as f:
        json.dump(recorded, f, indent=1)


def read_args(result, check=None):
    """What :func:`write_args` recorded in ``result``: a dict whose
    ``config`` is a dict. ``args.json`` is read as anyone may have written
    it: a regular file (:mod:`untrusted_file`) of at most
    :data:`MAX_ARGS_BYTES`, JSON of bounded nesting.

    Args:
        result (str): The result directory.
        check (callable): Called with the configuration; a ValueError it
            raises (see :func:`presets.check_config`) refuses the record.

    Raises:
        errors.ResultError: ``args.json`` is missing, cannot be read, or is
            not such a record.
    """
    path = os.path.join(result, ARGS_FILE)
    what = 'configuration written by train_mnist.py'
    recorded = untrusted_file.read_json(path, MAX_ARGS_BYTES,
                                        errors.ResultError, what)
    if not isinstance(recorded, dict) or not isinstance(
            recorded.get('config'), dict):
        raise errors.ResultError(_not_args(path, 'it holds no configuration'))
    if check is not None:
        try:
            check(recorded['config'])
        except ValueError as e:
            raise errors.ResultError(_not_args(path, e))
    return recorded


def _not_args(path, why):
    return '{} is not a configuration written by train_mnist.py ({}).'.format(
        path, ' '.join(str(why).split()))


def read_log(result):
    """The LogReport entries of a run, oldest first: a list of JSON
    objects (their values are checked by whoever reads them). The log is
    read as anyone may have written it: a regular file of at most
    :data:`MAX_LOG_BYTES`, JSON of bounded nesting.

    Raises:
        errors.ResultError: The log is missing, cannot be read, or is not
            a list of objects; one line naming it.
    """
    path = os.path.join(result, LOG_FILE)
    what = 'LogReport log'
    log = untrusted_file.read_json(path, MAX_LOG_BYTES, errors.ResultError,
                                   what)
    if not isinstance(log, list):
        raise errors.ResultError('{} is not a {}: it holds {}, not a list of '
                                 'entries.'.format(path, what,
                                                   _json_kind(log)))
    for index, entry in enumerate(log):
        if not isinstance(entry, dict):
            raise errors.ResultError(
                '{} is not a {}: entry {} is {}, not an object.'.format(
                    path, what, index + 1, _json_kind(entry)))
    return log


def _json_kind(value):
    """What a JSON value is, in words."""
    if isinstance(value, bool):
        return 'true or false'
    return {dict: 'an object', list: 'a list', str: 'a string',
            type(None): 'null'}.get(type(value), 'a number')
