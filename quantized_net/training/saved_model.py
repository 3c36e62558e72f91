"""A trained model in a result directory: saving it whole, and reading it
back with the configuration that describes it, as data only."""
import os
import zipfile
import zlib

import numpy

import chainer

from quantized_net.atomic_file import atomic_write
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import safe_npz
from quantized_net import errors
from quantized_net import untrusted_file


def save_model(model, out, name=result_dir.MODEL_FILE):
    """Writes the trained ``model`` to ``out`` as ``name``, whole or not at
    all."""
    with atomic_write(os.path.join(out, name), 'wb') as f:
        chainer.serializers.save_npz(f, model)


def array_shapes(config):
    """``{name: shape}`` of the arrays :func:`save_model` writes for the
    classifier ``config`` describes; found from the sizes alone, nothing
    built."""
    shapes = {}
    for i, shape in enumerate(presets.layer_shapes(config), 1):
        shapes['predictor/l{}/W'.format(i)] = tuple(shape)
        shapes['predictor/l{}/b'.format(i)] = (shape[0],)
        for name in ('beta', 'gamma', 'avg_mean', 'avg_var'):
            shapes['predictor/b{}/{}'.format(i, name)] = (shape[0],)
        shapes['predictor/b{}/N'.format(i)] = ()
    return shapes


def _check_shapes(model_path, args_path, config):
    """errors.ResultError unless every array ``model_path`` declares, read
    from its header alone, is one of the model ``config`` describes, of
    its shape: checked before the model is built or any array read."""
    expected = array_shapes(config)
    with untrusted_file.open_regular(model_path, errors.ResultError) as f:
        try:
            with numpy.load(f, allow_pickle=False) as archive:
                for name in sorted(archive.files):
                    shape = safe_npz.member_header(archive, name)[1]
                    if expected.get(name) != tuple(shape):
                        raise errors.ResultError(
                            '{} does not hold the model that {} describes '
                            '({} is {}, not {}).'.format(
                                model_path, args_path, name, tuple(shape),
                                expected.get(name, 'one of its arrays')))
        except (ValueError, KeyError, EOFError, AttributeError, OSError,
                NotImplementedError, zipfile.BadZipFile, zlib.error):
            # Not an archive of arrays: safe_npz says so (reading no more
            # than the members checked above).
            safe_npz.read_npz(model_path)
            raise errors.ResultError('{} is not an archive of arrays; it '
                                     'was not loaded.'.format(model_path))


def load_model(result, name=result_dir.MODEL_FILE):
    """The classifier saved in ``result`` as ``name``, on the CPU, and its
    configuration. The configuration is checked (:func:`presets.
    check_config`: its size too), and the model file's arrays against it
    from their headers, before the model is built.

    Raises:
        errors.ResultError: What is missing or wrong, in one line.
    """
    result_dir.check_result(result, 'a finished')
    args_path = os.path.join(result, result_dir.ARGS_FILE)
    model_path = os.path.join(result, name)
    for path in (args_path, model_path):
        if not os.path.lexists(path):  # what is there is read as it is
            raise errors.ResultError(
                '{} does not exist; give the --out directory of a {} '
                'train_mnist.py run.'.format(
                    path, 'finished' if name == result_dir.MODEL_FILE else
                    'validated (--validation N)'))
    config = result_dir.read_args(result, check=presets.check_config)[
        'config']
    _check_shapes(model_path, args_path, config)
    model = presets.build_classifier(config)
    try:
        safe_npz.load_npz(model_path, model)
    except errors.ResultError:
        raise
    except Exception as e:  # a zip, key or shape error: not this model
        raise errors.ResultError(
            '{} does not hold the model that {} describes ({}: {}).'.format(
                model_path, args_path, type(e).__name__,
                ' '.join(str(e).split())))
    return model, config
