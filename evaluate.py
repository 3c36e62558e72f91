#!/usr/bin/env python3
"""Evaluates a model that train_mnist.py saved, on the MNIST test set.

    ./evaluate.py result             # reads result/args.json, result/model.npz

Prints the test accuracy and error, and how many distinct values each
quantized weight matrix takes: a check that the bit width is what the
configuration says.
"""
import argparse
import json
import os
import sys

import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer.backends import cuda

import presets
from train_mnist import UsageError, _int_at_least, load_data, select_device

PROG = 'evaluate.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Test accuracy of a trained quantized MLP')
    parser.add_argument('result', help='Output directory of train_mnist.py '
                                       '(holding args.json and model.npz)')
    parser.add_argument('--batchsize', '-b', type=_int_at_least(1),
                        default=100,
                        help='Number of images in each mini-batch')
    parser.add_argument('--device', '-d', default='-1',
                        help='Chainer device specifier: @numpy, @cupy:0, or '
                             'an integer (negative for the CPU)')
    parser.add_argument('--dataset-dir', default=None,
                        help='Directory with the four MNIST IDX files')
    return parser.parse_args(argv)


def load_model(result):
    """The classifier saved in ``result``, and its configuration."""
    config_path = os.path.join(result, 'args.json')
    model_path = os.path.join(result, 'model.npz')
    for path in (config_path, model_path):
        if not os.path.isfile(path):
            raise UsageError(
                '{} does not exist; give the --out directory of a finished '
                'train_mnist.py run.'.format(path))
    try:
        with open(config_path) as f:
            config = json.load(f)['config']
        model = presets.build_classifier(config)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError('{} is not a configuration written by '
                         'train_mnist.py ({}).'.format(config_path, e))
    try:
        chainer.serializers.load_npz(model_path, model)
    except Exception as e:  # a zip, key or shape error: not this model
        raise UsageError('{} does not hold the model that {} describes '
                         '({}: {}).'.format(model_path, config_path,
                                            type(e).__name__,
                                            ' '.join(str(e).split())))
    return model, config


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
        for link in model.predictor.linear_layers():
            q = link.weight_quant(link.W.array)
            rows.append((link.name, link.W.shape,
                         int(len(numpy.unique(cuda.to_cpu(q))))))
    return rows


def main(argv=None):
    args = parse_args(argv)
    try:
        device = select_device(args.device, '--device {}'.format(
            args.device))
        model, config = load_model(args.result)
        model.to_device(device)
        device.use()
        _, _, test_set = load_data(args.dataset_dir, 0)
    except UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    acc = accuracy(model, test_set, args.batchsize, device)
    print('model: {} (preset {preset}; quantizers: weight {weight_quant}, '
          'activation {act_quant}, gradient {grad_quant}, input '
          '{input_quant})'.format(os.path.join(args.result, 'model.npz'),
                                  **config))
    print('test accuracy: {:.4f}  test error: {:.2f}%  ({} images)'.format(
        acc, 100 * (1 - acc), len(test_set)))
    rows = distinct_weight_values(model)
    levels = model.predictor.linear_layers()[0].weight_quant.levels
    print('distinct values per quantized weight matrix ({} allows {}):'
          .format(config['weight_quant'],
                  'any number' if levels is None else 'at most {}'.format(
                      levels)))
    for name, shape, count in rows:
        print('  {} {}x{}: {}'.format(name, shape[1], shape[0], count))
    print('  mean: {:.1f}'.format(numpy.mean([c for _, _, c in rows])))


if __name__ == '__main__':
    main()
