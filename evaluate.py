#!/usr/bin/env python3
"""Evaluates a model that train_mnist.py saved, on the MNIST test set.

    ./evaluate.py result             # reads result/args.json, result/model.npz

Prints the test accuracy and error, which epoch the model is, and how many
distinct values each quantized weight matrix takes: a check that the bit
width is what the configuration says.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse

from quantized_net import cli
from quantized_net.training import evaluation

PROG = 'evaluate.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Test accuracy of a trained quantized MLP')
    cli.add_model_flags(parser)
    parser.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                        default=100,
                        help='Number of images in each mini-batch')
    cli.add_device_flags(parser)
    cli.add_dataset_flag(parser)
    return cli.parse(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: evaluation.report(
        args.result, args.model_file, args.batchsize,
        cli.select_device(args), args.dataset_dir))


if __name__ == '__main__':
    main()
