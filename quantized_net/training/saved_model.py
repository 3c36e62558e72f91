"""A trained model in a result directory: saving it whole, and reading it
back with the configuration that describes it, as data only."""
import os

import chainer

from quantized_net.atomic_file import atomic_write
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import safe_npz
from quantized_net import errors


def save_model(model, out, name=result_dir.MODEL_FILE):
    """Writes the trained ``model`` to ``out`` as ``name``, whole or not at
    all."""
    with atomic_write(os.path.join(out, name), 'wb') as f:
        chainer.serializers.save_npz(f, model)


def load_model(result, name=result_dir.MODEL_FILE):
    """The classifier saved in ``result`` as ``name``, on the CPU, and its
    configuration.

    Raises:
        errors.ResultError: What is missing or wrong, in one line.
    """
    if not os.path.isdir(result):
        raise errors.ResultError(
            '{} is not a directory{}; give the --out directory of a '
            'finished train_mnist.py run.'.format(
                result, '' if os.path.exists(result)
                else ' (it does not exist)'))
    args_path = os.path.join(result, result_dir.ARGS_FILE)
    model_path = os.path.join(result, name)
    for path in (args_path, model_path):
        if not os.path.isfile(path):
            raise errors.ResultError(
                '{} does not exist; give the --out directory of a {} '
                'train_mnist.py run.'.format(
                    path, 'finished' if name == result_dir.MODEL_FILE else
                    'validated (--validation N)'))
    config = result_dir.read_args(result, check=presets.check_config)[
        'config']
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
