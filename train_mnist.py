#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
"""
import argparse
import os
import random
import sys

import matplotlib
matplotlib.use('Agg')  # plots are written to files; no display needed

import numpy  # noqa: E402

import chainer_compat  # noqa: E402,F401  (before chainer: NumPy 2)
import chainer  # noqa: E402
import chainer.links as L  # noqa: E402
from chainer import training  # noqa: E402
from chainer.backends import cuda  # noqa: E402
from chainer.training import extensions  # noqa: E402

import mnist_dataset  # noqa: E402
import net  # noqa: E402
from weight_clip import WeightClip  # noqa: E402

PROG = 'train_mnist.py'
NO_CUPY = (
    '{} asks for a GPU, but CuPy is not installed. Install the CuPy wheel '
    'for your CUDA version (pip install cupy-cuda12x for CUDA 12, '
    'cupy-cuda13x for CUDA 13), or leave out --gpu/--device to train on '
    'the CPU.')


class UsageError(Exception):
    """Something the user can fix; printed as one line, no traceback."""


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                'expected an integer, got {!r}'.format(text))
        if value < low:
            raise argparse.ArgumentTypeError(
                'must be at least {}, got {}'.format(low, value))
        return value
    parse.__name__ = 'integer'
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Quantized neural network (Hubara et al. 2016) on MNIST')
    parser.add_argument('--batchsize', '-b', type=_int_at_least(1),
                        default=100,
                        help='Number of images in each mini-batch')
    parser.add_argument('--epoch', '-e', type=_int_at_least(1), default=20,
                        help='Number of sweeps over the dataset to train')
    parser.add_argument('--frequency', '-f', type=_int_at_least(1),
                        default=1,
                        help='Take a snapshot every this many epochs')
    parser.add_argument('--device', '-d', default=None,
                        help='Chainer device specifier: @numpy, @cupy:0, '
                             'or an integer (negative for the CPU)')
    parser.add_argument('--gpu', '-g', type=_int_at_least(-1), default=-1,
                        help='GPU ID (-1 for the CPU); same as '
                             '--device @cupy:ID')
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default=None,
                        help='Resume the training from this snapshot')
    parser.add_argument('--unit', '-u', type=_int_at_least(1), default=1000,
                        help='Number of units in each hidden layer')
    parser.add_argument('--noplot', dest='plot', action='store_false',
                        help='Disable PlotReport extension')
    parser.add_argument('--seed', type=_int_at_least(0), default=None,
                        help='Random seed; the same seed on the CPU gives '
                             'the same log')
    parser.add_argument('--dataset-dir', default=None,
                        help='Directory with the four MNIST IDX files (.gz '
                             'or raw); default: $MNIST_DIR, else a verified '
                             'download cached in Chainer\'s dataset root')
    args = parser.parse_args(argv)
    if args.device is not None and args.gpu != -1:
        parser.error('give either --device or --gpu, not both')
    if args.device is None:
        args.device = args.gpu
        args.device_flag = '--gpu {}'.format(args.gpu)
    else:
        args.device_flag = '--device {}'.format(args.device)
    return args


def _wants_gpu(spec):
    text = str(spec)
    return text.startswith('@cupy') or text.isdigit()


def select_device(spec, flag):
    """The chainer device for ``spec`` (given as ``flag``), or UsageError
    saying what is wrong."""
    if _wants_gpu(spec) and not cuda.available:
        raise UsageError(NO_CUPY.format(flag))
    try:
        device = chainer.get_device(spec)
    except (RuntimeError, ValueError) as e:
        raise UsageError('invalid device {!r}: {}'.format(
            spec, ' '.join(str(e).split())))
    if device.xp is cuda.cupy:
        try:
            count = cuda.cupy.cuda.runtime.getDeviceCount()
        except cuda.cupy.cuda.runtime.CUDARuntimeError as e:
            raise UsageError('CuPy is installed but finds no usable CUDA '
                             'GPU ({}); check the driver, or train on the '
                             'CPU.'.format(e))
        if device.device.id >= count:
            raise UsageError('there is no CUDA GPU {} ({} found).'.format(
                device.device.id, count))
    return device


def seed_everything(seed, device):
    random.seed(seed)
    numpy.random.seed(seed)
    if device.xp is cuda.cupy:
        cuda.cupy.random.seed(seed)


def train(args):
    device = select_device(args.device, args.device_flag)
    if args.seed is not None:
        seed_everything(args.seed, device)

    print('Device: {}'.format(device))
    print('# unit: {}'.format(args.unit))
    print('# Minibatch-size: {}'.format(args.batchsize))
    print('# epoch: {}'.format(args.epoch))
    print('# seed: {}'.format(args.seed))
    print('')

    # L.Classifier adds softmax cross-entropy and accuracy on top.
    model = L.Classifier(net.MnistMLP(784, args.unit, 10))
    model.to_device(device)
    device.use()

    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    # Keeps the real-valued parameters in [-1, 1] after every update.
    optimizer.add_hook(WeightClip())

    try:
        train_set, test_set = mnist_dataset.get_mnist(args.dataset_dir)
    except mnist_dataset.DatasetError as e:
        raise UsageError(str(e))

    train_iter = chainer.iterators.SerialIterator(train_set, args.batchsize)
    test_iter = chainer.iterators.SerialIterator(
        test_set, args.batchsize, repeat=False, shuffle=False)

    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, device=device)
    trainer = training.Trainer(updater, (args.epoch, 'epoch'), out=args.out)

    # Evaluate the model with the test dataset at the end of each epoch.
    trainer.extend(extensions.Evaluator(test_iter, model, device=device))

    # Write the computational graph (cg.dot) once, to inspect the network.
    trainer.extend(extensions.dump_graph('main/loss'))

    # Snapshot the whole trainer, so that --resume can continue the run;
    # only the latest is kept (each holds the model and Adam's state).
    trainer.extend(extensions.snapshot(n_retains=1),
                   trigger=(args.frequency, 'epoch'))

    # Average the reported values over each epoch and write them to log.
    trainer.extend(extensions.LogReport())

    # Plot loss and accuracy of training and validation, once per epoch.
    if args.plot and extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(
            ['main/loss', 'validation/main/loss'],
            'epoch', file_name='loss.png'))
        trainer.extend(extensions.PlotReport(
            ['main/accuracy', 'validation/main/accuracy'],
            'epoch', file_name='accuracy.png'))

    # The seed's table, one row per epoch, plus the time taken so far.
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss',
         'main/accuracy', 'validation/main/accuracy', 'elapsed_time']))

    # Show progress within an epoch and an estimate of the time left.
    trainer.extend(extensions.ProgressBar())

    if args.resume:
        resume(args.resume, trainer)

    trainer.run()


def resume(path, trainer):
    if not os.path.isfile(path):
        raise UsageError('cannot resume: snapshot {} does not exist.'.format(
            path))
    try:
        chainer.serializers.load_npz(path, trainer)
    except Exception as e:  # a zip, key or shape error: not our snapshot
        raise UsageError(
            'cannot resume from {}: it is not a snapshot of this network '
            '({}: {}). Give a snapshot_iter_* file written by this script '
            'with the same --unit.'.format(
                path, type(e).__name__, ' '.join(str(e).split())))


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    except KeyboardInterrupt:
        sys.exit('{}: interrupted; resume with --resume and the latest '
                 'snapshot_iter_* in {}'.format(PROG, args.out))


if __name__ == '__main__':
    main()
