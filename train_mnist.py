#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU, the original suite
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
    ./train_mnist.py --preset bnn --unit 2048 --epoch 50
    ./train_mnist.py --weight-quant sign --act-quant linear:2 \\
        --grad-quant log:6
"""
import argparse
import os
import random
import sys

import numpy
try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer import training
from chainer.backends import cuda
from chainer.training import extensions

import cli
import mnist_dataset
import presets
import result_dir
import trainer_extensions

PROG = 'train_mnist.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Quantized neural network (Hubara et al. 2016) on MNIST')
    parser.add_argument('--frequency', '-f', type=cli.int_at_least(1),
                        default=1,
                        help='Take a snapshot every this many epochs')
    cli.add_device_flags(parser)
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default=None,
                        help='Resume the training from this snapshot')
    parser.add_argument('--replace', action='store_true',
                        help='Delete the files of an earlier run in --out '
                             'and start again (without it, such a --out is '
                             'refused)')
    parser.add_argument('--noplot', dest='plot', action='store_false',
                        help='Disable PlotReport extension')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=None,
                        help='Random seed; the same seed on the CPU gives '
                             'the same log')
    cli.add_dataset_flag(parser)
    presets.add_config_flags(parser)
    args = cli.parse(parser, argv)
    args.config = presets.config_from_args(args)
    try:
        presets.check_config(args.config)
    except ValueError as e:
        parser.error(str(e))
    return args


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


def train(args):
    config = args.config
    device = cli.select_device(args)
    if args.seed is not None:
        seed_everything(args.seed, device)
    print_header(device, config, args.seed)

    train_set, val_set, test_set = mnist_dataset.load_splits(
        args.dataset_dir, config['validation'])
    batchsize = config['batchsize']
    if batchsize > len(train_set):
        raise cli.UsageError(
            '--batchsize {} is larger than the training set ({} images); '
            'give at most {}.'.format(batchsize, len(train_set),
                                      len(train_set)))
    if args.resume:
        check_snapshot(args.resume)

    with result_dir.claim(args.out, args.resume, args.replace):
        args.claimed = True
        train_in(args, device, train_set, val_set, test_set)


def train_in(args, device, train_set, val_set, test_set):
    """Trains in ``args.out``, which this run holds."""
    config = args.config
    batchsize = config['batchsize']
    model = presets.build_classifier(config)
    model.to_device(device)
    optimizer = presets.build_optimizer(model, config)

    train_iter = chainer.iterators.SerialIterator(train_set, batchsize)
    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, device=device)
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'),
                               out=args.out)

    # Stop at the first NaN or infinite loss, before it reaches a snapshot.
    trainer.extend(trainer_extensions.StopOnNonFiniteLoss())

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
    trainer.extend(extensions.dump_graph('main/loss',
                                         filename=result_dir.GRAPH_FILE))

    # Snapshot the whole trainer, random state included, so that --resume
    # continues the run exactly; only the latest is kept (each holds the
    # model and Adam's state).
    every = (args.frequency, 'epoch')
    trainer.extend(trainer_extensions.RandomState(device), trigger=every,
                   priority=trainer_extensions.Snapshot.priority + 1)
    trainer.extend(trainer_extensions.Snapshot(n_retains=1), trigger=every)

    # Average the reported values over each epoch and write them to log.
    trainer.extend(trainer_extensions.LogReport())

    names = [name for name, _ in evaluated]
    # Plot loss and accuracy of training and evaluation, once per epoch.
    if args.plot and extensions.PlotReport.available():
        for what, file_name in result_dir.PLOT_FILES.items():
            trainer.extend(trainer_extensions.PlotReport(
                ['main/' + what] + [n + '/main/' + what for n in names],
                'epoch', file_name=file_name))

    # The seed's table, one row per epoch, plus the time taken so far.
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy'] +
        [n + '/main/accuracy' for n in names] + ['elapsed_time']))

    # Show progress within an epoch and an estimate of the time left.
    trainer.extend(extensions.ProgressBar())

    if args.resume:
        resume(args.resume, trainer)
    result_dir.write_args(args.out, config, args.seed, sys.argv[1:])

    # A diverging run ends with StopOnNonFiniteLoss's one line, not with
    # NumPy's overflow warnings.
    with numpy.errstate(over='ignore', invalid='ignore'):
        trainer.run(show_loop_exception_msg=False)
    result_dir.save_model(model, args.out)


def check_snapshot(path):
    if os.path.isdir(path):
        raise cli.UsageError('cannot resume: {} is a directory; give one of '
                             'its snapshot_iter_* files.'.format(path))
    if not os.path.isfile(path):
        raise cli.UsageError(
            'cannot resume: snapshot {} does not exist.'.format(path))


def resume(path, trainer):
    try:
        result_dir.load_npz(path, trainer)
    except result_dir.ResultError as e:
        raise cli.UsageError('cannot resume: {}'.format(e))
    except Exception as e:  # a key or shape error: not our snapshot
        raise cli.UsageError(
            'cannot resume from {}: it is not a snapshot of this network '
            '({}: {}). Give a snapshot_iter_* file written by this script '
            'with the same preset, --unit and --layers.'.format(
                path, type(e).__name__, ' '.join(str(e).split())))


def resume_hint(args):
    """What to say when the run is interrupted."""
    latest = (result_dir.snapshots(args.out)
              if getattr(args, 'claimed', False) else [])
    if not latest:
        return 'no snapshot was written yet'
    return 'resume with --resume {}'.format(
        os.path.join(args.out, latest[-1][1]))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: train(args), interrupted=lambda: resume_hint(args))


if __name__ == '__main__':
    main()
