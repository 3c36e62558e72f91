#!/usr/bin/env python3
"""Classifies images with a packed binarized MLP or ConvNet (written by
export.py).

    ./infer_packed.py result/model.packed.npz            # its test set
    ./infer_packed.py model.packed.npz --gpu 0           # CuPy raw kernels
    ./infer_packed.py model.packed.npz --compare result  # against Chainer
    ./infer_packed.py model.packed.npz --compare result --best
    ./infer_packed.py model.packed.npz --images digits-idx3-ubyte.gz

The network runs on 1-bit weights and activations, XNOR and popcount on
64-bit words, or with ``--engine blas`` on float32 products of +-1 matrices
(see quantized_net/packed/engine.py); both give the same labels on every
device.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse
import os
import time

import numpy

from quantized_net import cli
from quantized_net import errors
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import format as packed_format
from quantized_net.packed import reference
from quantized_net.packed.kernels import cpu_features
from quantized_net.training import datasets
from quantized_net.training import mnist
from quantized_net.training import result_dir
from quantized_net.training import saved_model

PROG = 'infer_packed.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Classify images with a packed binarized '
                               'MLP or ConvNet (XNOR-popcount)')
    parser.add_argument('packed', help='File written by export.py')
    parser.add_argument('--images', default=None,
                        help='IDX image file (.gz or raw) to classify '
                             'instead of the test set of the data set the '
                             'network was trained on')
    parser.add_argument('--labels', default=None,
                        help='IDX label file for --images; without it the '
                             'predicted labels are printed, one a line')
    cli.add_dataset_flag(parser, 'data set (MNIST, CIFAR-10 or SVHN)',
                         'MNIST_DIR, $CIFAR10_DIR or $SVHN_DIR')
    parser.add_argument('--engine', choices=packed_engine.ENGINES,
                        default='packed',
                        help='packed: XNOR-popcount; blas: float32 products '
                             'of +-1 matrices (default: packed)')
    parser.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                        default=10000,
                        help='Number of images classified at a time')
    parser.add_argument('--compare', metavar='RESULT', default=None,
                        help='Output directory of train_mnist.py: count the '
                             'images whose label differs from the Chainer '
                             'model\'s')
    cli.add_best_flag(
        parser, 'With --compare: the Chainer model is RESULT/{} (as '
                'export.py --best packs it)'.format(
                    result_dir.BEST_MODEL_FILE))
    cli.add_device_flags(parser)
    return cli.parse(parser, argv)


def load_images(args, dataset):
    """``(pixels, labels or None, description)`` that ``args`` ask for:
    the files of --images, or the test set of ``dataset``."""
    if args.images:
        pixels = mnist.read_images(args.images)
        labels = (mnist.read_labels(args.labels)
                  if args.labels else None)
        if labels is not None and len(labels) != len(pixels):
            raise errors.UsageError(
                '{} holds {} images but {} holds {} labels.'.format(
                    args.images, len(pixels), args.labels, len(labels)))
        return pixels, labels, args.images
    if args.labels:
        raise errors.UsageError('--labels needs --images.')
    pixels, labels = datasets.test_pixels(dataset, args.dataset_dir)
    return pixels, labels, 'the {} test set'.format(
        datasets.TITLES[dataset])


def infer(args):
    device = cli.select_device(args)
    if device.xp is numpy and args.engine == 'packed' and \
            not cpu_features.HAVE_NUMBA:
        raise errors.UsageError(cpu_features.NO_NUMBA + '.')
    network = packed_format.load(args.packed)
    pixels, labels, source = load_images(
        args, None if args.images else packed_format.trained_on(
            network, args.packed))
    if pixels.shape[1] != network.sizes[0]:
        raise errors.UsageError(
            '{} has {} values an image; {} takes {}.'.format(
                source, pixels.shape[1], args.packed, network.sizes[0]))
    model = None
    if args.compare:  # on the CPU, whose float32 rounding export.py folded
        model, _ = saved_model.load_model(args.compare, args.model_file)
    engine = packed_engine.select(network, device, args.engine)
    engine.classify(pixels[:1])  # compiles the kernels before timing
    start = time.perf_counter()
    predicted = numpy.concatenate([
        engine.classify(pixels[i:i + args.batchsize])
        for i in range(0, len(pixels), args.batchsize)])
    seconds = time.perf_counter() - start
    if labels is None:
        print('\n'.join(map(str, predicted)))
        return
    accuracy = float((predicted == labels).mean())
    print('{}: {} engine on the {}{}'.format(
        args.packed, args.engine, cli.where(device),
        ' ({} kernels)'.format(engine.simd) if engine.simd else ''))
    print('test accuracy: {:.4f}  test error: {:.2f}%  ({} images from {}, '
          '{:.0f} images/s)'.format(accuracy, 100 * (1 - accuracy),
                                    len(pixels), source,
                                    len(pixels) / seconds))
    if model is not None:
        chainer_labels = reference.chainer_labels(model, pixels, 1000)
        print('Chainer model {}: test accuracy {:.4f}; {} of {} labels '
              'differ from the packed network\'s'.format(
                  os.path.join(args.compare, args.model_file),
                  float((chainer_labels == labels).mean()),
                  int((chainer_labels != predicted).sum()), len(pixels)))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: infer(args))


if __name__ == '__main__':
    main()
