#!/usr/bin/env python3
"""Evaluates a model that train_mnist.py saved, on the MNIST test set.

    ./evaluate.py result             # reads result/args.json, result/model.npz

Prints the test accuracy and error, and how many distinct values each
quantized weight matrix takes: a check that the bit width is what the
configuration says.
"""
import argparse
import os

import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer.backends import cuda

from quantized_net import cli
from quantized_net.training import mnist as mnist_dataset
from quantized_net.training import result_dir

PROG = 'evaluate.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Test accuracy of a trained quantized MLP')
    result_dir.add_model_flags(parser)
    parser.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                        default=100,
                        help='Number of images in each mini-batch')
    cli.add_device_flags(parser)
    cli.add_dataset_flag(parser)
    return cli.parse(parser, argv)


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


def evaluate(args):
    device = cli.select_device(args)
    model, config = result_dir.load_model(args.result, args.model_file)
    model.to_device(device)
    _, _, test_set = mnist_dataset.load_splits(args.dataset_dir)
    acc = accuracy(model, test_set, args.batchsize, device)
    print('model: {} (preset {preset}; quantizers: weight {weight_quant}, '
          'activation {act_quant}, gradient {grad_quant}, input '
          '{input_quant})'.format(
              os.path.join(args.result, args.model_file), **config))
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


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: evaluate(args))


if __name__ == '__main__':
    main()
