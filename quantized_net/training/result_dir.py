"""A result directory: what ``train_mnist.py`` writes to ``--out``, the
rules that keep it safe, and reading a trained model back from it.

``args.json``
    The run's configuration (:mod:`presets`), seed and command line.
``log``
    Chainer's LogReport: one JSON entry per epoch.
``model.npz``
    The trained classifier's parameters, written when training ends.
``model_best.npz``
    Its parameters after the epoch of the best validation accuracy, in a
    run with held-out validation images (the ``bnn`` preset): the model to
    report a test error of.
``snapshot_iter_N``
    The whole trainer after iteration ``N`` (random state included), for
    ``--resume``.
``loss.png``, ``accuracy.png``, ``cg.dot``
    Plots and the computational graph.

The rules: one run at a time holds a directory (:class:`DirectoryLock`); a
new run does not start in a directory that holds another run's files
unless told to replace them (:func:`claim`), and removes only what it
wrote; every result (snapshot, log, args.json, model, plots) is written
whole or not at all (:mod:`atomic_file`);
nothing read from a directory is unpickled (:func:`load_npz`).
"""
import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import zipfile

import numpy

import chainer

from quantized_net.atomic_file import TEMP_SUFFIX, atomic_write, temp_prefix
from quantized_net.packed.format import PACKED_FILE
from quantized_net.training import presets
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


def _fail(path, e, doing):
    raise errors.ResultError('cannot {} {}: {}.'.format(
        doing, path, e.strerror or e))


class DirectoryLock(object):
    """An exclusive lock on a directory, held from :meth:`acquire` to
    :meth:`release` or the end of the process: the kernel releases it when
    the process dies, even by SIGKILL, so it never goes stale. The lock
    file holds the holder's process id, for the message another run gets.
    """

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_FILE)
        self.fd = None

    def acquire(self):
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                _fail(os.path.dirname(self.path), e, 'write to')
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.read(fd, 32).decode(errors='replace').strip()
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    _fail(self.path, e, 'lock')
                raise errors.ResultError(
                    '{} is in use by another run (process {}); wait for it '
                    'to end, or choose another directory.'.format(
                        os.path.dirname(self.path), holder or 'unknown'))
            # A holder that released the lock removed the file it locked;
            # ours must be the file that is there now.
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            try:
                os.remove(self.path)
            except FileNotFoundError:  # removed by hand meanwhile
                pass
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def make_directory(path, flag='--out'):
    """Creates ``path`` (and its parents) if missing; errors.ResultError if it is
    a file or cannot be created."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise errors.ResultError('{} {} is a file, not a directory.'.format(
            flag, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        _fail(path, e, 'create')


def _remove_temporaries(out):
    """What a killed writer left: our temporary files, Chainer's
    temporary snapshot directories."""
    names = RUN_FILES + (SNAPSHOT_PREFIX,)
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if TEMP_SUFFIX in name and name.startswith(
                tuple(temp_prefix(n) for n in names)):
            os.remove(path)
        elif _CHAINER_TEMP.match(name) and os.path.isdir(path):
            shutil.rmtree(path)


def run_files(out):
    """The names in ``out`` that a run wrote."""
    return sorted(name for name in os.listdir(out)
                  if name in RUN_FILES or _SNAPSHOT.match(name))


@contextlib.contextmanager
def claim(out, resume=None, replace=False):
    """Holds ``out`` for this run (see :class:`DirectoryLock`) for the
    ``with`` block, made ready: created if missing, temporary files of
    killed writers removed. A directory holding another run's files is
    refused unless ``resume`` is one of its snapshots (the same run,
    continued) or ``replace`` asks to remove those files first (only
    those: nothing else is touched)."""
    make_directory(out)
    with DirectoryLock(out):
        try:
            _remove_temporaries(out)
            found = run_files(out)
        except OSError as e:
            _fail(out, e, 'clean up')
        continuing = resume is not None and os.path.samefile(
            os.path.dirname(os.path.abspath(resume)), out)
        if found and not continuing:
            if not replace:
                latest = snapshots(out)
                hint = ('continue it with --resume {}, '.format(
                    os.path.join(out, latest[-1][1])) if latest else '')
                raise errors.ResultError(
                    '{} holds the results of another run ({}); {}choose '
                    'another --out, or give --replace to delete them and '
                    'start again.'.format(out, ', '.join(found), hint))
            try:
                for name in found:
                    os.remove(os.path.join(out, name))
            except OSError as e:
                _fail(out, e, 'replace the earlier run in')
        yield


def write_args(out, config, seed, argv, processes=None):
    """Records the run's configuration, seed and command line, and for a
    multi-process run the number of processes."""
    recorded = {'config': config, 'seed': seed, 'argv': argv}
    if processes is not None:
        recorded['processes'] = processes
    with atomic_write(os.path.join(out, ARGS_FILE)) as f:
        json.dump(recorded, f, indent=1)


def add_model_flags(parser):
    """The positional result directory of the scripts that read a trained
    model, and ``--best`` to read its best-validation model instead."""
    parser.add_argument('result', help='Output directory of train_mnist.py '
                                       '(holding {} and {})'.format(
                                           ARGS_FILE, MODEL_FILE))
    add_best_flag(parser, 'Read {}, the model of the epoch with the best '
                          'validation accuracy, instead of {}'.format(
                              BEST_MODEL_FILE, MODEL_FILE))


def add_best_flag(parser, help_text):
    """``--best``: ``args.model_file`` names the best-validation model
    (:data:`BEST_MODEL_FILE`) instead of :data:`MODEL_FILE`."""
    parser.add_argument('--best', dest='model_file', action='store_const',
                        const=BEST_MODEL_FILE, default=MODEL_FILE,
                        help=help_text)


def save_model(model, out, name=MODEL_FILE):
    """Writes the trained ``model`` as ``name`` whole or not at all."""
    with atomic_write(os.path.join(out, name), 'wb') as f:
        chainer.serializers.save_npz(f, model)


def read_args(result):
    """What :func:`write_args` recorded, or None where nothing readable
    is."""
    try:
        with open(os.path.join(result, ARGS_FILE)) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def read_log(result):
    """The LogReport entries of a run, oldest first."""
    with open(os.path.join(result, LOG_FILE)) as f:
        return json.load(f)


_PICKLED = 'it holds pickled data, which could run any code'


def read_npz(path):
    """The arrays of the ``.npz`` file ``path``, by name, read without
    ever unpickling: a file that is not an archive of plain arrays (a
    pickle, a damaged or foreign file) is refused with errors.ResultError before
    anything in it runs."""
    def refuse(why):
        raise errors.ResultError('{} is not an archive of arrays ({}); it was not '
                          'loaded.'.format(path, why))
    try:
        with open(path, 'rb') as f:
            head = f.read(2)
        archive = numpy.load(path, allow_pickle=False)
    except OSError as e:
        _fail(path, e, 'read')
    except (ValueError, EOFError, zipfile.BadZipFile):
        # A pickle starts with its protocol opcode, 0x80.
        refuse(_PICKLED if head[:1] == b'\x80' else
               'empty, damaged, or not an .npz file')
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        refuse('a single array')
    with archive:
        arrays = {}
        try:
            for name in archive.files:
                # A member that is not a .npy file would come back as bytes.
                if archive.zip.open(name + '.npy').read(6) != b'\x93NUMPY':
                    refuse('{} is not an array'.format(name))
                arrays[name] = archive[name]
        except ValueError as e:  # an object array: NumPy refuses it
            refuse(_PICKLED if 'allow_pickle' in str(e) else
                   'damaged: {}'.format(' '.join(str(e).split())))
        except (KeyError, EOFError, zipfile.BadZipFile) as e:
            refuse('damaged: {}'.format(' '.join(str(e).split())))
    return arrays


def deserialize(arrays, obj, optional=None):
    """Fills ``obj`` (a link, a trainer) from ``arrays`` (what
    :func:`read_npz` returned). Keys for which ``optional(key)`` is true
    may be missing (the object keeps its own value). Other errors (a
    missing key, a shape that differs) propagate."""
    chainer.serializers.NpzDeserializer(
        arrays, ignore_names=lambda key: bool(
            optional and optional(key) and key not in arrays)).load(obj)


def load_npz(path, obj):
    """Fills ``obj`` from the ``.npz`` file ``path``, as
    ``chainer.serializers.load_npz`` does but without ever unpickling
    (see :func:`read_npz` and :func:`deserialize`)."""
    deserialize(read_npz(path), obj)


def load_model(result, name=MODEL_FILE):
    """The classifier saved in ``result`` as ``name``, on the CPU, and its
    configuration; errors.ResultError says what is missing or wrong."""
    if not os.path.isdir(result):
        raise errors.ResultError('{} is not a directory{}; give the --out '
                          'directory of a finished train_mnist.py run.'
                          .format(result, '' if os.path.exists(result)
                                  else ' (it does not exist)'))
    config_path = os.path.join(result, ARGS_FILE)
    model_path = os.path.join(result, name)
    for path in (config_path, model_path):
        if not os.path.isfile(path):
            raise errors.ResultError(
                '{} does not exist; give the --out directory of a {} '
                'train_mnist.py run.'.format(
                    path, 'finished' if name == MODEL_FILE else
                    'validated (--validation N)'))
    try:
        with open(config_path) as f:
            config = json.load(f)['config']
        presets.check_config(config)
        model = presets.build_classifier(config)
    except (ValueError, KeyError, TypeError) as e:
        raise errors.ResultError('{} is not a configuration written by '
                          'train_mnist.py ({}).'.format(config_path, e))
    try:
        load_npz(model_path, model)
    except errors.ResultError:
        raise
    except Exception as e:  # a zip, key or shape error: not this model
        raise errors.ResultError('{} does not hold the model that {} describes '
                          '({}: {}).'.format(model_path, config_path,
                                             type(e).__name__,
                                             ' '.join(str(e).split())))
    return model, config
