#!/usr/bin/env python3
"""Trains the quantized MLP of Hubara et al. (2016) on MNIST with Chainer.

    ./train_mnist.py                 # CPU, the original suite
    ./train_mnist.py --gpu=0         # CUDA device 0 (needs CuPy)
    ./train_mnist.py --preset bnn --unit 2048 --epoch 50
    ./train_mnist.py --weight-quant sign --act-quant linear:2 \\
        --grad-quant log:6

The flags are quantized_net/training/flags.py's, the training
session.py's, the trainer trainer.py's; the files it writes, and the rules that keep them safe, are
described in result_dir.py and claim.py.
"""
import quantized_net  # first: a signal from here on ends in one line

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net.training import session

PROG = 'train_mnist.py'


def main(argv=None):
    session.train_command(
        PROG, 'Quantized neural network (Hubara et al. 2016) on MNIST', argv)


if __name__ == '__main__':
    main()
