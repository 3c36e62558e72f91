"""A result directory: what ``train_mnist.py`` writes to ``--out``, and
reading a trained model back from it.

``args.json``
    The run's configuration (:mod:`presets`), seed and command line.
``log``
    Chainer's LogReport: one JSON entry per epoch.
``model.npz``
    The trained classifier's parameters, written when training ends.
``snapshot_iter_N``
    The whole trainer after iteration ``N``, for ``--resume``.
"""
import json
import os

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer

from atomic_file import atomic_write
import cli
import presets

ARGS_FILE = 'args.json'
LOG_FILE = 'log'
MODEL_FILE = 'model.npz'
#: Chainer's snapshot name pattern; formatted with the trainer.
SNAPSHOT_FILE = 'snapshot_iter_{.updater.iteration}'


class ResultError(cli.UsageError):
    """A result directory that cannot be read; the message says why."""


def write_args(out, config, seed, argv):
    """Records the run's configuration, seed and command line."""
    with atomic_write(os.path.join(out, ARGS_FILE)) as f:
        json.dump({'config': config, 'seed': seed, 'argv': argv}, f,
                  indent=1)


def save_model(model, out):
    """Writes the trained ``model`` whole or not at all."""
    with atomic_write(os.path.join(out, MODEL_FILE), 'wb') as f:
        chainer.serializers.save_npz(f, model)


def read_log(result):
    """The LogReport entries of a run, oldest first."""
    with open(os.path.join(result, LOG_FILE)) as f:
        return json.load(f)


def load_model(result):
    """The classifier saved in ``result``, on the CPU, and its
    configuration; ResultError says what is missing or wrong."""
    config_path = os.path.join(result, ARGS_FILE)
    model_path = os.path.join(result, MODEL_FILE)
    for path in (config_path, model_path):
        if not os.path.isfile(path):
            raise ResultError(
                '{} does not exist; give the --out directory of a finished '
                'train_mnist.py run.'.format(path))
    try:
        with open(config_path) as f:
            config = json.load(f)['config']
        model = presets.build_classifier(config)
    except (ValueError, KeyError, TypeError) as e:
        raise ResultError('{} is not a configuration written by '
                          'train_mnist.py ({}).'.format(config_path, e))
    try:
        chainer.serializers.load_npz(model_path, model)
    except Exception as e:  # a zip, key or shape error: not this model
        raise ResultError('{} does not hold the model that {} describes '
                          '({}: {}).'.format(model_path, config_path,
                                             type(e).__name__,
                                             ' '.join(str(e).split())))
    return model, config
