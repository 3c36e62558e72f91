#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU, the original suite
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
    ./train_mnist.py --preset bnn --unit 2048 --epoch 50
    ./train_mnist.py --weight-quant sign --act-quant linear:2 \\
        --grad-quant log:6
"""
import argparse
import json
import os
import random
import sys

import matplotlib
matplotlib.use('Agg')  # plots are written to files; no display needed

import numpy  # noqa: E402

import chainer_compat  # noqa: E402,F401  (before chainer: NumPy 2)
import chainer  # noqa: E402
from chainer import training  # noqa: E402
from chainer.backends import cuda  # noqa: E402
from chainer.training import extensions  # noqa: E402

from atomic_file import atomic_write  # noqa: E402
import mnist_dataset  # noqa: E402
import net  # noqa: E402
import presets  # noqa: E402
import quantizers  # noqa: E402

PROG = 'train_mnist.py'
NO_CUPY = (
    '{} asks for a GPU, but CuPy is not installed. Install the CuPy wheel '
    'for your CUDA version (pip install cupy-cuda12x for CUDA 12, '
    'cupy-cuda13x for CUDA 13), or leave out --gpu/--device to run on '
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


def _quantizer_spec(text):
    try:
        return quantizers.parse(text).spec
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


_quantizer_spec.__name__ = 'quantizer'  # argparse names the type in errors


def _ratio(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            'expected a ratio in [0, 1), got {!r}'.format(text))
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(
            'expected a positive number, got {!r}'.format(text))
    return value


# Flags that override a field of the preset's configuration.
CONFIG_FLAGS = ('input_quant', 'weight_quant', 'act_quant', 'grad_quant',
                'activation', 'layers', 'unit', 'epoch', 'batchsize', 'loss',
                'lr', 'lr_final', 'input_dropout', 'dropout', 'validation')


def add_config_flags(parser):
    """The flags that choose the network and its training; each defaults
    to the preset's value. Shared with sweep.py."""
    parser.add_argument('--preset', choices=sorted(presets.PRESETS),
                        default='seed',
                        help='Starting configuration: seed (the original '
                             'suite, default), float (no quantization), bnn '
                             '(the binarized MLP of the paper)')
    group = parser.add_argument_group(
        'quantizers', 'each one of: ' + quantizers.SPEC_FORMS)
    for role, what in (('weight', 'every weight matrix'),
                       ('act', 'every hidden activation'),
                       ('grad', 'the gradient at every linear output'),
                       ('input', 'the network input')):
        group.add_argument('--{}-quant'.format(role), type=_quantizer_spec,
                           metavar='SPEC',
                           help='Quantizer of {}'.format(what))
    parser.add_argument('--activation', choices=net.ACTIVATIONS,
                        help='relu(q(x)) as the original, or q(clip(x, -1, '
                             '1)), hard-tanh units as in the paper')
    parser.add_argument('--batchsize', '-b', type=_int_at_least(1),
                        help='Number of images in each mini-batch')
    parser.add_argument('--epoch', '-e', type=_int_at_least(1),
                        help='Number of sweeps over the dataset to train')
    parser.add_argument('--unit', '-u', type=_int_at_least(1),
                        help='Number of units in each hidden layer')
    parser.add_argument('--layers', type=_int_at_least(1),
                        help='Number of hidden layers')
    parser.add_argument('--loss', choices=presets.LOSSES,
                        help='softmax cross-entropy or squared hinge')
    parser.add_argument('--lr', type=_positive_float,
                        help="Adam's alpha (at the start)")
    parser.add_argument('--lr-final', type=_positive_float,
                        help='Decay alpha exponentially to this by the last '
                             'epoch')
    parser.add_argument('--input-dropout', type=_ratio,
                        help='Dropout ratio on the input')
    parser.add_argument('--dropout', type=_ratio,
                        help='Dropout ratio after each hidden activation')
    parser.add_argument('--validation', type=_int_at_least(0),
                        help='Hold out this many training images to '
                             'validate on, and test on the test set; 0 '
                             'validates on the test set as the original')


def config_from_args(args):
    """The preset's configuration with the flags given applied."""
    config = dict(presets.PRESETS[args.preset], preset=args.preset)
    for name in CONFIG_FLAGS:
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    return config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Quantized neural network (Hubara et al. 2016) on MNIST')
    parser.add_argument('--frequency', '-f', type=_int_at_least(1),
                        default=1,
                        help='Take a snapshot every this many epochs')
    add_device_flags(parser)
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default=None,
                        help='Resume the training from this snapshot')
    parser.add_argument('--noplot', dest='plot', action='store_false',
                        help='Disable PlotReport extension')
    parser.add_argument('--seed', type=_int_at_least(0), default=None,
                        help='Random seed; the same seed on the CPU gives '
                             'the same log')
    parser.add_argument('--dataset-dir', default=None,
                        help='Directory with the four MNIST IDX files (.gz '
                             'or raw); default: $MNIST_DIR, else a verified '
                             'download cached in Chainer\'s dataset root')
    add_config_flags(parser)
    args = parser.parse_args(argv)
    args.config = config_from_args(args)
    resolve_device_flags(parser, args)
    return args


def add_device_flags(parser):
    """``--device/-d`` and ``--gpu/-g``, as in Chainer's examples."""
    parser.add_argument('--device', '-d', default=None,
                        help='Chainer device specifier: @numpy, @cupy:0, '
                             'or an integer (negative for the CPU)')
    parser.add_argument('--gpu', '-g', type=_int_at_least(-1), default=-1,
                        help='GPU ID (-1 for the CPU); same as '
                             '--device @cupy:ID')


def resolve_device_flags(parser, args):
    """Sets ``args.device`` (the specifier) and ``args.device_flag`` (the
    flag as given, for messages) from ``--device`` or ``--gpu``."""
    if args.device is not None and args.gpu != -1:
        parser.error('give either --device or --gpu, not both')
    if args.device is None:
        args.device = args.gpu
        args.device_flag = '--gpu {}'.format(args.gpu)
    else:
        args.device_flag = '--device {}'.format(args.device)


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


def print_header(device, config, seed):
    print('Device: {}'.format(device))
    print('# preset: {}'.format(config['preset']))
    print('# quantizers: weight {weight_quant}, activation {act_quant}, '
          'gradient {grad_quant}, input {input_quant}'.format(**config))
    print('# unit: {unit} x {layers} layers, {activation}'.format(**config))
    print('# Minibatch-size: {}'.format(config['batchsize']))
    print('# epoch: {}'.format(config['epoch']))
    print('# seed: {}'.format(seed))
    print('')


def load_data(dataset_dir, validation):
    """``(train, validation, test)``; validation is None when 0 images
    are held out."""
    try:
        train_set, test_set = mnist_dataset.get_mnist(dataset_dir)
    except mnist_dataset.DatasetError as e:
        raise UsageError(str(e))
    if not validation:
        return train_set, None, test_set
    if validation >= len(train_set):
        raise UsageError('--validation {} leaves no training images (the '
                         'training set has {}).'.format(validation,
                                                        len(train_set)))
    train_set, val_set = chainer.datasets.split_dataset(
        train_set, len(train_set) - validation)
    return train_set, val_set, test_set


def save_model(model, path):
    with atomic_write(path, 'wb') as f:
        chainer.serializers.save_npz(f, model)


def train(args):
    config = args.config
    device = select_device(args.device, args.device_flag)
    if args.seed is not None:
        seed_everything(args.seed, device)
    print_header(device, config, args.seed)

    train_set, val_set, test_set = load_data(args.dataset_dir,
                                             config['validation'])

    model = presets.build_classifier(config)
    model.to_device(device)
    device.use()
    optimizer = presets.build_optimizer(model, config)

    batchsize = config['batchsize']
    train_iter = chainer.iterators.SerialIterator(train_set, batchsize)
    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, device=device)
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'),
                               out=args.out)
    os.makedirs(args.out, exist_ok=True)
    with atomic_write(os.path.join(args.out, 'args.json')) as f:
        json.dump({'config': config, 'seed': args.seed,
                   'argv': sys.argv[1:]}, f, indent=1)

    # Evaluate at the end of each epoch: on the held-out images and the
    # test set, or, as the original, on the test set named "validation".
    evaluated = [('validation', val_set if val_set else test_set)]
    if val_set:
        evaluated.append(('test', test_set))
    for name, dataset in evaluated:
        trainer.extend(extensions.Evaluator(
            chainer.iterators.SerialIterator(
                dataset, batchsize, repeat=False, shuffle=False),
            model, device=device), name=name)

    # Decay Adam's alpha exponentially, epoch by epoch, to lr_final.
    rate = presets.lr_decay_rate(config)
    if rate:
        trainer.extend(extensions.ExponentialShift('alpha', rate),
                       trigger=(1, 'epoch'))
        trainer.extend(extensions.observe_value(
            'alpha', lambda trainer: optimizer.alpha), trigger=(1, 'epoch'))

    # Write the computational graph (cg.dot) once, to inspect the network.
    trainer.extend(extensions.dump_graph('main/loss'))

    # Snapshot the whole trainer, so that --resume can continue the run;
    # only the latest is kept (each holds the model and Adam's state).
    trainer.extend(extensions.snapshot(n_retains=1),
                   trigger=(args.frequency, 'epoch'))

    # Average the reported values over each epoch and write them to log.
    trainer.extend(extensions.LogReport())

    names = [name for name, _ in evaluated]
    # Plot loss and accuracy of training and evaluation, once per epoch.
    if args.plot and extensions.PlotReport.available():
        for what in ('loss', 'accuracy'):
            trainer.extend(extensions.PlotReport(
                ['main/' + what] + [n + '/main/' + what for n in names],
                'epoch', file_name=what + '.png'))

    # The seed's table, one row per epoch, plus the time taken so far.
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy'] +
        [n + '/main/accuracy' for n in names] + ['elapsed_time']))

    # Show progress within an epoch and an estimate of the time left.
    trainer.extend(extensions.ProgressBar())

    if args.resume:
        resume(args.resume, trainer)

    trainer.run()
    save_model(model, os.path.join(args.out, 'model.npz'))


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
            'with the same preset, --unit and --layers.'.format(
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
