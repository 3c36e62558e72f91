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

from quantized_net.atomic_file import TEMP_SUFFIX, atomic_write, temp_prefix
from quantized_net.packed.format import PACKED_FILE
from quantized_net import errors

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
# Chainer's own snapshot writer left these behind when killed.
_CHAINER_TEMP = re.compile('tmp' + re.escape(SNAPSHOT_PREFIX))


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
    """``(files, directories)``: the names in ``directory`` of what killed
    writers left, the temporary files of a run's files and Chainer's
    temporary snapshot directories."""
    prefixes = tuple(temp_prefix(name)
                     for name in RUN_FILES + (SNAPSHOT_PREFIX,))
    files, directories = [], []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if TEMP_SUFFIX in name and name.startswith(prefixes):
            files.append(name)
        elif _CHAINER_TEMP.match(name) and os.path.isdir(path):
            directories.append(name)
    return files, directories


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
    ``config`` is a dict.

    Args:
        result (str): The result directory.
        check (callable): Called with the configuration; a ValueError it
            raises (see :func:`presets.check_config`) refuses the record.

    Raises:
        errors.ResultError: ``args.json`` is missing, cannot be read, or is
            not such a record.
    """
    path = os.path.join(result, ARGS_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)
    except FileNotFoundError:
        raise errors.ResultError('{} does not exist.'.format(path))
    except OSError as e:
        raise errors.ResultError('cannot read {}: {}.'.format(
            path, e.strerror or e))
    except ValueError as e:  # not JSON, or not UTF-8
        raise errors.ResultError(_not_args(path, e))
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
    """The LogReport entries of a run, oldest first.

    Raises:
        OSError: The log cannot be read.
        ValueError: It is not JSON.
    """
    with open(os.path.join(result, LOG_FILE)) as f:
        return json.load(f)
