"""Evaluating a trained model: its accuracy on a data set, how many
distinct values each quantized weight matrix takes, and ``evaluate.py``'s
report of both."""
import os

import numpy

import chainer
from chainer.backends import cuda

from quantized_net.training import datasets
from quantized_net.training import reported
from quantized_net.training import result_dir
from quantized_net.training import saved_model
from quantized_net import errors


def accuracy(model, dataset, batchsize, device):
    """Fraction of ``dataset`` that ``model`` classifies correctly."""
    correct = 0
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for start in range(0, len(dataset), batchsize):
            x, t = chainer.dataset.concat_examples(
                dataset[start:start + batchsize], device)
            y = model.predictor(x)
            correct += int((y.array.argmax(axis=1) == t).sum())
    return correct / len(dataset)


def distinct_weight_values(model):
    """``[(name, shape, distinct values of the quantized weight)]``."""
    rows = []
    with chainer.using_config('train', False):
        for link in model.predictor.weight_layers():
            q = link.weight_quant(link.W.array)
            rows.append((link.name, link.W.shape,
                         int(len(numpy.unique(cuda.to_cpu(q))))))
    return rows


def model_epoch(result, model_file):
    """The words for the epoch of ``result``'s model ``model_file``
    (``'epoch 5 (last)'``), or None where its log does not say (a log
    missing or damaged leaves the report without them)."""
    try:
        log = result_dir.read_log(result)
    except errors.ResultError:
        return None
    return reported.model_epoch(
        log, best=model_file == result_dir.BEST_MODEL_FILE)


def report(result, model_file, batchsize, device, dataset_dir=None):
    """Prints the test accuracy and error of ``result``'s model
    ``model_file`` on ``device``, which epoch it is, and how many distinct
    values each quantized weight matrix takes.

    Raises:
        errors.ResultError: The model cannot be read.
        errors.DatasetError: The test set cannot be read.
    """
    model, config = saved_model.load_model(result, model_file)
    model.to_device(device)
    _, _, test_set = datasets.load_splits(dict(config, validation=0),
                                          dataset_dir)
    acc = accuracy(model, test_set, batchsize, device)
    epoch = model_epoch(result, model_file)
    print('model: {}{} (preset {preset}; quantizers: weight {weight_quant}, '
          'activation {act_quant}, gradient {grad_quant}, input '
          '{input_quant})'.format(
              os.path.join(result, model_file),
              ', ' + epoch if epoch else '', **config))
    print('test accuracy: {:.4f}  test error: {:.2f}%  ({} images)'.format(
        acc, 100 * (1 - acc), len(test_set)))
    rows = distinct_weight_values(model)
    levels = model.predictor.weight_layers()[0].weight_quant.levels
    print('distinct values per quantized weight matrix ({} allows {}):'
          .format(config['weight_quant'],
                  'any number' if levels is None else 'at most {}'.format(
                      levels)))
    for name, shape, count in rows:
        print('  {} {}: {}'.format(name, 'x'.join(map(str, (
            shape[1], shape[0]) + tuple(shape[2:]))), count))
    print('  mean: {:.1f}'.format(numpy.mean([c for _, _, c in rows])))
