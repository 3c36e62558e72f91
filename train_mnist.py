#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU, the original suite
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
    ./train_mnist.py --preset bnn --unit 2048 --epoch 50
    ./train_mnist.py --weight-quant sign --act-quant linear:2 \\
        --grad-quant log:6

The trainer and its extensions are built in trainer_setup.py; the files it
writes, and the rules that keep them safe, are described in result_dir.py.
"""
import argparse
import sys

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net import cli
from quantized_net.training import mnist as mnist_dataset
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import trainer as trainer_setup

PROG = 'train_mnist.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Quantized neural network (Hubara et al. 2016) on MNIST')
    trainer_setup.add_flags(parser)
    return trainer_setup.parse_args(parser, argv)


def train(args):
    config = args.config
    device = cli.select_device(args)
    if args.seed is not None:
        trainer_setup.seed_everything(args.seed, device)
    trainer_setup.print_header(device, config, args.seed)

    train_set, val_set, test_set = mnist_dataset.load_splits(
        args.dataset_dir, config['validation'])
    trainer_setup.check_batchsize(config['batchsize'], train_set)
    if args.resume:
        trainer_setup.check_resume(args)

    with result_dir.claim(args.out, args.resume, args.replace):
        args.claimed = True
        model = presets.build_classifier(config)
        model.to_device(device)
        optimizer = presets.build_optimizer(model, config)
        trainer = trainer_setup.build_trainer(
            args, model, optimizer, train_set, val_set, test_set, device)
        if args.resume:
            trainer_setup.load_snapshot(args.resume, trainer)
        result_dir.write_args(args.out, config, args.seed, sys.argv[1:])
        trainer_setup.run(trainer)
        result_dir.save_model(model, args.out)


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: train(args),
            interrupted=lambda: trainer_setup.resume_hint(args))


if __name__ == '__main__':
    main()
