#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU, the original suite
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
    ./train_mnist.py --preset bnn --unit 2048 --epoch 50
    ./train_mnist.py --weight-quant sign --act-quant linear:2 \\
        --grad-quant log:6

The training is quantized_net/training/session.py's, the trainer
trainer.py's; the files it writes, and the rules that keep them safe, are
described in result_dir.py and claim.py.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse
import sys

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net import cli
from quantized_net.training import flags
from quantized_net.training import run_description
from quantized_net.training import session

PROG = 'train_mnist.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Quantized neural network (Hubara et al. 2016) on MNIST')
    flags.add_train_flags(parser)
    return flags.parse_train_args(parser, argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    run = run_description.describe(parse_args(argv), argv)
    training = session.Training(run)
    cli.run(PROG, training, interrupted=training.resume_hint)


if __name__ == '__main__':
    main()
